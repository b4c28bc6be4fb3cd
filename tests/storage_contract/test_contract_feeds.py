"""Feeds: configured feeds, claims for polling, poll outcomes (single and batched)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.base import FeedSpec, FeedUpdate, Storage, StorageError
from tests.storage_contract.data import FEED_A, FEED_B, feed_ids

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


async def test_sync_feeds_inserts_due_now_updates_names_and_keeps_removed(store: Storage) -> None:
    first = await store.sync_feeds([FeedSpec(FEED_A, "A"), FeedSpec(FEED_B)])
    assert set(first) == {FEED_A, FEED_B}
    assert first[FEED_A].url == FEED_A and first[FEED_A].next_poll is None
    assert first[FEED_B].name is None

    second = await store.sync_feeds([FeedSpec(FEED_A, "Renamed")])
    assert set(second) == {FEED_A}  # only the configured ones
    assert second[FEED_A].name == "Renamed" and second[FEED_A].id == first[FEED_A].id
    assert await store.get_feed(FEED_B) is not None  # kept, with its history
    assert [f.key for f in await store.list_feeds()] == [FEED_A, FEED_B]
    assert [f.key for f in await store.list_feeds([FEED_B])] == [FEED_B]
    assert await store.sync_feeds([]) == {}
    assert await store.get_feed("https://unknown.example.org/") is None


async def test_an_edited_config_entry_re_enables_a_disabled_feed(store: Storage) -> None:
    await store.sync_feeds([FeedSpec(FEED_A, "A", fingerprint="v1")])
    await store.set_feed_disabled(FEED_A, "410 Gone")
    await store.sync_feeds([FeedSpec(FEED_A, "A", fingerprint="v1")])  # unchanged: stays off
    assert (await store.get_feed(FEED_A)).disabled == "410 Gone"  # type: ignore[union-attr]
    again = await store.sync_feeds([FeedSpec(FEED_A, "A", fingerprint="v2")])
    assert again[FEED_A].disabled is None and again[FEED_A].next_poll is None


async def test_update_feed_keeps_unset_fields_and_counts_errors(store: Storage) -> None:
    a, b = await feed_ids(store)
    t0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    await store.update_feed(
        b,
        FeedUpdate(
            last_poll=t0,
            next_poll=t0 + timedelta(minutes=15),
            http_status=200,
            etag='"v1"',
            last_modified="Wed, 01 May 2024 12:00:00 GMT",
            title="Feed B's own title",
            interval=900.0,
        ),
    )
    fb = await store.get_feed(FEED_B)
    assert fb is not None
    assert fb.etag == '"v1"' and fb.title == "Feed B's own title"
    assert fb.name == "Feed B's own title"  # no configured name: the feed's title
    assert fb.last_poll == t0 and fb.last_success == t0 and fb.last_poll.tzinfo is not None
    assert fb.next_poll == t0 + timedelta(minutes=15)
    assert fb.last_polled_by == store.identity

    t1 = t0 + timedelta(minutes=15)
    retry = t1 + timedelta(hours=1)
    for _ in range(2):
        await store.update_feed(
            b,
            FeedUpdate(
                last_poll=t1,
                next_poll=t1 + timedelta(minutes=30),
                http_status=503,
                ok=False,
                error="503 Service Unavailable",
                retry_after=retry,
            ),
        )
    fb = await store.get_feed(FEED_B)
    assert fb is not None
    assert fb.error_count == 2 and fb.last_error == "503 Service Unavailable"
    assert fb.etag == '"v1"' and fb.interval == 900.0  # `...` kept them
    assert fb.last_success == t0 and fb.retry_after == retry and fb.http_status == 503

    moved = "https://b.example.org/new.xml"
    await store.update_feed(
        b, FeedUpdate(last_poll=t1, next_poll=t1, url=moved, etag=None, retry_after=None)
    )
    fb = await store.get_feed(FEED_B)
    assert fb is not None
    assert fb.error_count == 0 and fb.last_error is None and fb.last_success == t1
    assert fb.url == moved and fb.key == FEED_B and fb.etag is None and fb.retry_after is None
    fa = await store.get_feed(FEED_A)
    assert fa is not None and fa.last_poll is None  # the other feed untouched

    with pytest.raises(StorageError, match="no feed with id"):
        await store.update_feed(a + b + 100, FeedUpdate(last_poll=t1, next_poll=t1))


async def test_update_feeds_applies_each_outcome_like_update_feed(store: Storage) -> None:
    states = await store.sync_feeds([FeedSpec(key=f"http://x.test/{i}.xml") for i in range(3)])
    ids = [states[f"http://x.test/{i}.xml"].id for i in range(3)]
    later = NOW + timedelta(hours=1)
    await store.update_feeds(
        [
            (ids[0], FeedUpdate(last_poll=NOW, next_poll=later, http_status=304)),
            (ids[1], FeedUpdate(last_poll=NOW, next_poll=later, http_status=200,
                                etag='"v2"', body_hash="abc", title="Feed one")),
            (ids[2], FeedUpdate(last_poll=NOW, next_poll=later, ok=False, error="boom",
                                retry_after=later)),
        ]
    )  # fmt: skip
    feeds = {f.id: f for f in await store.list_feeds()}
    assert feeds[ids[0]].http_status == 304 and feeds[ids[0]].etag is None
    assert feeds[ids[0]].last_success == NOW and feeds[ids[0]].next_poll == later
    assert feeds[ids[1]].etag == '"v2"' and feeds[ids[1]].body_hash == "abc"
    assert feeds[ids[1]].title == "Feed one"
    assert feeds[ids[2]].error_count == 1 and feeds[ids[2]].last_error == "boom"
    assert feeds[ids[2]].retry_after == later and feeds[ids[2]].last_success is None
    # The same feed twice in one batch: applied in order.
    await store.update_feeds(
        [
            (ids[2], FeedUpdate(last_poll=later, next_poll=later, ok=False, error="again")),
            (ids[2], FeedUpdate(last_poll=later, next_poll=later, ok=False, error="and again")),
        ]
    )
    f2 = await store.get_feed("http://x.test/2.xml")
    assert f2 is not None and f2.error_count == 3 and f2.last_error == "and again"
    await store.update_feeds([(ids[2], FeedUpdate(last_poll=later, next_poll=later))])
    assert (await store.get_feed("http://x.test/2.xml")).error_count == 0  # type: ignore[union-attr]


async def test_update_feeds_with_an_unknown_id_changes_nothing(store: Storage) -> None:
    [state] = (await store.sync_feeds([FeedSpec(key="http://x.test/0.xml")])).values()
    for batch in (
        [(state.id, FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200)),
         (99999, FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200))],
        [(state.id, FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200)),
         (state.id, FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200)),
         (99999, FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200))],
    ):  # fmt: skip
        with pytest.raises(StorageError, match="feed updates name no feed"):
            await store.update_feeds(batch)
        feed = await store.get_feed("http://x.test/0.xml")
        assert feed is not None and feed.http_status is None and feed.last_poll is None


async def test_claim_feeds_respects_next_poll_retry_after_disabled_and_keys(
    store: Storage,
) -> None:
    keys = [f"https://f{i}.example.org/feed" for i in range(7)]
    feeds = await store.sync_feeds([FeedSpec(k) for k in keys])
    ids = [feeds[k].id for k in keys]
    # f0 never polled (due), f1 due long ago, f2 due a bit ago, f3 future, f4 retry_after future,
    # f5 retry_after past, f6 disabled.
    await store.update_feed(ids[1], FeedUpdate(NOW, NOW - timedelta(hours=2)))
    await store.update_feed(ids[2], FeedUpdate(NOW, NOW - timedelta(minutes=1)))
    await store.update_feed(ids[3], FeedUpdate(NOW, NOW + timedelta(minutes=1)))
    await store.update_feed(
        ids[4], FeedUpdate(NOW, NOW - timedelta(hours=1), retry_after=NOW + timedelta(seconds=5))
    )
    await store.update_feed(
        ids[5], FeedUpdate(NOW, NOW - timedelta(minutes=30), retry_after=NOW - timedelta(seconds=1))
    )
    await store.set_feed_disabled(keys[6], "410 Gone")

    assert [f.key for f in await store.claim_feeds(NOW, keys, 2, 60, owner="a:1:x")] == keys[:2]
    rest = await store.claim_feeds(NOW, keys, 100, 60)
    assert [f.key for f in rest] == [keys[5], keys[2]]  # the first two are leased to a:1:x
    assert rest[0].lease_owner == store.identity and rest[0].lease_until == NOW + timedelta(
        seconds=60
    )
    # A daemon's own leases are free to itself (it knows which of its polls are in flight):
    # a poll whose outcome could not be written is due again at once, not after its lease.
    again = await store.claim_feeds(NOW, keys, 100, 60)
    assert [f.key for f in again] == [keys[5], keys[2]]
    # ... except those it names as in flight: they are neither returned nor leased again.
    until = again[0].lease_until
    assert [f.key for f in await store.claim_feeds(NOW, keys, 100, 90, exclude=[ids[5]])] == [
        keys[2]
    ]
    in_flight = await store.get_feed(keys[5])
    assert in_flight is not None and in_flight.lease_until == until
    assert await store.claim_feeds(NOW, keys, 100, 60, exclude=[ids[5], ids[2]]) == []
    B = "b:2:y"  # another daemon: every lease above keeps it off those feeds
    assert await store.claim_feeds(NOW, keys, 100, 60, owner=B) == []
    assert await store.claim_feeds(NOW, [], 10, 60, owner=B) == []
    later = NOW + timedelta(seconds=6)
    assert [f.key for f in await store.claim_feeds(later, keys, 100, 60, owner=B)] == [keys[4]]

    # A poll's outcome ends the lease; the next claim follows the new schedule.
    await store.update_feed(ids[1], FeedUpdate(NOW, NOW))
    f1 = await store.get_feed(keys[1])
    assert f1 is not None and f1.lease_owner is None and f1.lease_until is None
    assert [f.key for f in await store.claim_feeds(NOW, keys, 10, 60, owner=B)] == [keys[1]]

    disabled = await store.get_feed(keys[6])
    assert disabled is not None and disabled.disabled == "410 Gone"
    await store.update_feed(ids[6], FeedUpdate(NOW, NOW + timedelta(days=1)))
    await store.set_feed_disabled(keys[6], None)  # re-enabled: due now
    assert [f.key for f in await store.claim_feeds(NOW, keys, 10, 60, owner="c:3:z")] == [keys[6]]
    await store.set_feed_disabled(keys[3], None)  # not disabled: its schedule is untouched
    with pytest.raises(StorageError, match="no feed with key"):
        await store.set_feed_disabled("https://nope.example.org/", "x")


async def test_a_lease_that_runs_out_makes_the_feed_claimable_again(store: Storage) -> None:
    [feed] = (await store.sync_feeds([FeedSpec(FEED_A)])).values()
    [claimed] = await store.claim_feeds(NOW, [FEED_A], 10, 30, owner="host-a:1:aaaa")
    assert claimed.id == feed.id and claimed.lease_owner == "host-a:1:aaaa"
    assert await store.claim_feeds(NOW + timedelta(seconds=29), [FEED_A], 10, 30) == []
    [again] = await store.claim_feeds(NOW + timedelta(seconds=30), [FEED_A], 10, 30)
    assert again.lease_owner == store.identity


async def test_claims_follow_the_configured_keys_as_they_change(store: Storage) -> None:
    """The dispatcher claims with the same key list round after round (backends may keep
    what they derived from it); a changed list, or a key synced later, is seen at once."""
    keys = [f"https://k{i}.example.org/feed" for i in range(6)]
    await store.sync_feeds([FeedSpec(k) for k in keys[:4]])
    first, second, pending = keys[:2], keys[2:4], keys[4:]
    assert [f.key for f in await store.claim_feeds(NOW, first, 10, 60)] == first
    assert [f.key for f in await store.claim_feeds(NOW, second, 10, 60)] == second
    assert await store.claim_feeds(NOW, pending, 10, 60) == []  # configured, not yet synced
    await store.sync_feeds([FeedSpec(k) for k in pending])
    assert [f.key for f in await store.claim_feeds(NOW, pending, 10, 60)] == pending
    assert [f.key for f in await store.claim_feeds(NOW, keys, 10, 60, exclude=[])] == keys
