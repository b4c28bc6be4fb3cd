"""Articles: dedup by GUID and canonical URL, alerts and outbox rows stored with them, pruning."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage.base import FeedSpec, NewAlert, NewArticle, Storage, StorageError
from tests.storage_contract.data import FEED_A, all_deliveries, article, feed_ids


async def test_dedup_by_guid_in_feed_and_canonical_url_anywhere(store: Storage) -> None:
    a, b = await feed_ids(store)
    first = await store.add_articles([article(a, 1), article(a, 2, canonical=None)])
    assert all(isinstance(i, int) for i in first)

    again = await store.add_articles(
        [
            article(a, 1, canonical="https://other.example.org/x"),  # same guid, same feed
            article(b, 1, canonical="https://other.example.org/y"),  # same guid, other feed: new
            article(b, 99, canonical="https://news.example.org/1"),  # same canonical, other feed
            article(a, 3, guid=None, canonical=None),  # nothing to dedup on: always new
            article(a, 3, guid=None, canonical=None),
        ]
    )
    assert again[0] is None and again[2] is None
    assert isinstance(again[1], int) and isinstance(again[3], int) and isinstance(again[4], int)

    guids, urls = await store.known_items(
        a, ["guid-1", "guid-2", "guid-404"], ["https://news.example.org/1", "https://x.org/"]
    )
    assert guids == {"guid-1", "guid-2"} and urls == {"https://news.example.org/1"}
    assert await store.known_items(b, ["guid-2"], []) == (set(), set())
    assert await store.known_items(b, [], []) == (set(), set())

    stored = await store.get_article(first[0] or -1)
    assert stored is not None
    assert stored.title == "Title 1 – évacuation" and stored.feed_name == "A"
    assert stored.published == datetime(2024, 1, 3, 10, 0, tzinfo=UTC)
    assert stored.fetched_at.tzinfo is not None
    assert await store.get_article(10**9) is None
    fa = await store.get_feed(FEED_A)
    assert fa is not None and fa.total_items == 4


async def test_add_articles_across_feeds_returns_ids_in_order_and_none_for_duplicates(
    store: Storage,
) -> None:
    states = await store.sync_feeds([FeedSpec(key=f"http://x.test/{i}.xml") for i in range(2)])
    ids = [states[f"http://x.test/{i}.xml"].id for i in range(2)]

    def art(feed_id: int, guid: str | None, url: str | None, **kw: object) -> NewArticle:
        return NewArticle(feed_id=feed_id, guid=guid, url=url, canonical_url=url,
                          title=f"t {guid}", **kw)  # type: ignore[arg-type]  # fmt: skip

    first = await store.add_articles([art(ids[0], "a", "http://x.test/a")])
    assert first[0] is not None
    alert = NewAlert(id="msg_1", watchlist="w", payload={"id": "msg_1"}, channels=["c"])
    batch = [
        art(ids[0], "a", "http://x.test/a"),  # stored before
        art(ids[1], "b", "http://x.test/b", alerts=[alert]),
        art(ids[0], "c", "http://x.test/b"),  # same canonical URL earlier in this batch
        art(ids[1], None, None),  # no identity at all: always new
        art(ids[1], "b", "http://x.test/other"),  # same GUID in the same feed
        art(ids[0], "b", "http://x.test/d"),  # same GUID, other feed: new
    ]
    got = await store.add_articles(batch)
    assert got[0] is None and got[2] is None and got[4] is None
    new = [got[1], got[3], got[5]]
    assert all(isinstance(i, int) for i in new) and len(set(new)) == 3
    for i in (1, 3, 5):
        art_ = await store.get_article(got[i])  # type: ignore[arg-type]
        assert art_ is not None and art_.guid == batch[i].guid
        assert art_.feed_id == batch[i].feed_id
    alerts = await store.list_alerts()
    assert [a.id for a in alerts] == ["msg_1"] and alerts[0].article_id == got[1]
    feeds = {f.id: f for f in await store.list_feeds()}
    assert feeds[ids[0]].total_items == 2 and feeds[ids[1]].total_items == 2


async def test_same_article_twice_in_one_batch(store: Storage) -> None:
    a, _ = await feed_ids(store)
    ids = await store.add_articles(
        [
            article(a, 7, channels=("hook",), alert_id="al-7"),
            article(a, 7, channels=("hook",), alert_id="al-7"),
        ]
    )
    assert isinstance(ids[0], int) and ids[1] is None
    alerts = await store.list_alerts()
    assert [x.id for x in alerts] == ["al-7"] and len(alerts[0].deliveries) == 1


async def test_an_alert_id_stored_before_gets_no_new_outbox_rows(store: Storage) -> None:
    a, _ = await feed_ids(store)
    await store.add_articles([article(a, 1, channels=("hook",), alert_id="al-x")])
    [aid] = await store.add_articles([article(a, 2, channels=("hook", "slack"), alert_id="al-x")])
    assert aid is not None  # the article is new; its alert id is not
    [record] = await store.list_alerts()
    assert [d.channel for d in record.deliveries] == ["hook"]


async def test_alerts_and_outbox_rows_come_with_new_articles_only(store: Storage) -> None:
    a, b = await feed_ids(store)
    digest_at = datetime.now(UTC) + timedelta(hours=1)
    [aid] = await store.add_articles(
        [
            article(
                a,
                1,
                channels=("hook", "slack", "phones", "hook"),
                alert_id="al-1",
                not_before={"phones": digest_at},
            )
        ]
    )
    assert aid is not None
    [record] = await store.list_alerts()
    assert record.id == "al-1" and record.article_id == aid and record.watchlist == "wildfire"
    assert record.payload == {"type": "match", "id": "al-1", "n": 1}
    by_channel = {d.channel: d for d in record.deliveries}
    assert set(by_channel) == {"hook", "slack", "phones"}
    assert all(d.state == "pending" and d.attempts == 0 for d in record.deliveries)
    assert by_channel["phones"].next_attempt == digest_at
    assert by_channel["hook"].next_attempt <= datetime.now(UTC)

    # The same article again (by canonical URL, from another feed, with another alert id):
    dup = await store.add_articles([article(b, 1, channels=("hook",), alert_id="al-dup")])
    assert dup == [None]
    assert [r.id for r in await store.list_alerts()] == ["al-1"]
    assert len(await all_deliveries(store)) == 3
    assert await store.count_rows("alerts") == 1 and await store.count_rows("deliveries") == 3

    # A digest channel is not claimable before its period ends.
    soon = datetime.now(UTC) + timedelta(seconds=1)
    assert await store.claim_deliveries("phones", soon, 10, 30) == []
    assert len(await store.claim_deliveries("phones", digest_at, 10, 30)) == 1


async def test_a_bad_article_rolls_back_the_whole_call(store: Storage) -> None:
    a, _ = await feed_ids(store)
    bad = article(a, 2, channels=("hook",))
    bad.alerts[0].payload = {"when": object()}
    with pytest.raises(StorageError, match="not JSON-serialisable"):
        await store.add_articles([article(a, 1), bad])
    with pytest.raises(StorageError, match=r"(?i)foreign key"):
        await store.add_articles([article(a, 1), article(a + 1000, 3)])
    assert await store.count_rows("articles") == 0
    assert await store.add_articles([article(a, 1)]) != [None]  # the connection still works


async def test_text_with_nul_characters_and_unusual_unicode_is_stored(store: Storage) -> None:
    """A hostile feed's NUL bytes cannot break a write (PostgreSQL's text cannot hold them)."""
    a, _ = await feed_ids(store)
    odd = article(a, 1, channels=("hook",), alert_id="al-nul")
    odd.title = "Nul\x00 title 🔥 \u202e"
    odd.body = "body\x00text"
    odd.alerts[0].payload = {"article": {"title": "Nul\x00 title"}, "n": 1}
    [aid] = await store.add_articles([odd])
    assert aid is not None
    got = await store.get_article(aid)
    assert got is not None and got.title.replace("\x00", "") == "Nul title 🔥 \u202e"
    [record] = await store.list_alerts()
    assert record.payload["article"]["title"].replace("\x00", "") == "Nul title"


async def test_concurrent_writers_on_one_storage_do_not_interleave(store: Storage) -> None:
    a, b = await feed_ids(store)
    batches = [
        [article(a if n % 2 else b, n * 10 + j, channels=("hook",)) for j in range(5)]
        for n in range(20)
    ]
    results = await asyncio.gather(*(store.add_articles(batch) for batch in batches))
    ids = [i for batch in results for i in batch]
    assert None not in ids and len(set(ids)) == 100
    assert await store.pending_count(["hook"]) == 100


async def test_articles_since(store: Storage) -> None:
    a, b = await feed_ids(store)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    await store.add_articles(
        [article(a if n % 2 else b, n, fetched_at=t0 + timedelta(hours=n)) for n in range(10)]
    )
    recent = await store.articles_since(t0 + timedelta(hours=7))
    assert [x.title for x in recent] == [
        "Title 9 – évacuation",
        "Title 8 – évacuation",
        "Title 7 – évacuation",
    ]
    assert recent[0].feed_name == "A" and recent[1].feed_name is None
    assert len(await store.articles_since(t0, limit=4)) == 4
    assert await store.articles_since(t0 + timedelta(days=1)) == []


async def test_extract_failures_per_feed_with_the_newest_reason(store: Storage) -> None:
    a, b = await feed_ids(store)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    arts = [article(a if n < 4 else b, n, fetched_at=t0 + timedelta(hours=n)) for n in range(6)]
    arts[0].extract_error = "too old to count"
    arts[1].extract_error = "extraction took longer than 10s"
    arts[2].extract_error = "the extraction worker crashed on this page"
    # arts[3] of feed a and arts[4] of feed b were extracted
    arts[5].extract_error = "page fetch failed: HTTP 404"
    await store.add_articles(arts)
    got = await store.extract_failures(t0 + timedelta(minutes=30))
    assert sorted(got) == [a, b]
    assert (got[a].count, got[a].last_error) == (2, "the extraction worker crashed on this page")
    assert got[a].last_at == t0 + timedelta(hours=2)
    assert (got[b].count, got[b].last_error) == (1, "page fetch failed: HTTP 404")
    assert await store.extract_failures(t0 + timedelta(days=1)) == {}


async def test_prune_text_keeps_identity(store: Storage) -> None:
    feeds = await store.sync_feeds([FeedSpec(key="https://f.example/rss")])
    fid = feeds["https://f.example/rss"].id
    now = datetime.now(UTC)
    old = [
        NewArticle(fid, f"g{i}", f"https://f.example/{i}", f"https://f.example/{i}", f"T{i}",
                   summary="s", body="b" * 100, fetched_at=now - timedelta(days=40))
        for i in range(12)
    ]  # fmt: skip
    fresh = NewArticle(fid, "new", "https://f.example/new", "https://f.example/new", "New",
                       summary="s", body="fresh body", fetched_at=now)  # fmt: skip
    await store.add_articles([*old, fresh])
    assert await store.prune_text(now - timedelta(days=30), batch=5) == 12
    assert await store.prune_text(now - timedelta(days=30), batch=5) == 0  # idempotent
    arts = {a.guid: a for a in await store.articles_since(now - timedelta(days=365))}
    assert arts["g3"].body == "" and arts["g3"].summary == "" and arts["g3"].title == "T3"
    assert arts["new"].body == "fresh body"
    # The identity still deduplicates: the same GUID or URL is known.
    guids, urls = await store.known_items(fid, ["g3"], ["https://f.example/3"])
    assert guids == {"g3"} and urls == {"https://f.example/3"}
