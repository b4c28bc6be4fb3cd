"""The outbox: claims and leases, outcomes (one by one and batched), releases, requeues."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage.base import DeliveryOutcome, FeedSpec, Storage
from tests.storage_contract.conftest import MakeStore
from tests.storage_contract.data import FEED_A, article, by_id, feed_ids, seed


async def test_claim_lease_expiry_and_reclaim(store: Storage) -> None:
    a, _ = await feed_ids(store)
    await store.add_articles(
        [article(a, n, channels=("hook", "slack"), alert_id=f"al-{n}") for n in range(3)]
    )
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_deliveries("hook", now, limit=2, lease=30)
    assert [d.alert_id for d in claimed] == ["al-0", "al-1"]
    first = claimed[0]
    assert first.state == "in_flight" and first.attempts == 1 and first.channel == "hook"
    assert first.payload == {"type": "match", "id": "al-0", "n": 0}
    assert first.watchlist == "wildfire" and first.lease_owner == store.identity
    assert first.lease_until == now + timedelta(seconds=30) and first.first_attempt == now

    # Leased rows are not claimable again until the lease runs out; other rows and channels are.
    rest = await store.claim_deliveries("hook", now + timedelta(seconds=10), limit=10, lease=30)
    assert [d.alert_id for d in rest] == ["al-2"]
    assert await store.claim_deliveries("hook", now + timedelta(seconds=29), 10, 30) == []
    assert len(await store.claim_deliveries("slack", now, 10, 30)) == 3
    assert await store.pending_count(["hook"]) == 3
    assert await store.next_delivery_time(["hook"]) == now + timedelta(seconds=30)

    # The worker "died": the lease expires and the next claim takes the rows again.
    later = now + timedelta(seconds=31)
    again = await store.claim_deliveries("hook", later, limit=10, lease=30)
    assert [d.alert_id for d in again] == ["al-0", "al-1"]
    assert again[0].attempts == 2 and again[0].first_attempt == now
    assert again[0].last_attempt == later


async def test_delivered_row_is_final_even_after_retry_fail_or_requeue(store: Storage) -> None:
    a, _ = await feed_ids(store)
    await store.add_articles([article(a, 1, channels=("hook", "slack"), alert_id="al-1")])
    now = datetime.now(UTC) + timedelta(seconds=1)
    [d] = await store.claim_deliveries("hook", now, 10, 30)
    await store.mark_delivered(d.alert_id, "hook", 200, now)
    # Late or confused transitions must not reset it.
    await store.mark_retry("al-1", "hook", now, 500, "late retry", now)
    await store.mark_failed("al-1", "hook", 400, "late failure", now)
    assert await store.requeue("al-1", now=now) == 1  # only the slack row
    assert await store.requeue(failed=True, now=now) == 0
    far = now + timedelta(days=30)
    assert await store.claim_deliveries("hook", far, 10, 30) == []
    [record] = await store.list_alerts()
    hook = next(x for x in record.deliveries if x.channel == "hook")
    assert hook.state == "delivered" and hook.last_status == 200 and hook.delivered_at == now
    assert hook.last_error is None and hook.attempts == 1 and hook.lease_owner is None
    assert await store.pending_count(["hook"]) == 0 and await store.pending_count() == 1


async def test_mark_retry_mark_failed_and_requeue(store: Storage) -> None:
    a, _ = await feed_ids(store)
    await store.add_articles(
        [article(a, n, channels=("hook",), alert_id=f"al-{n}") for n in range(2)]
    )
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_deliveries("hook", now, 10, 30)
    assert len(claimed) == 2

    retry_at = now + timedelta(seconds=60)
    await store.mark_retry("al-0", "hook", retry_at, 503, "503 Service Unavailable", now)
    await store.mark_failed("al-1", "hook", 404, "404 Not Found", now)
    assert await store.pending_count(["hook"]) == 1
    assert await store.next_delivery_time(["hook"]) == retry_at
    assert await store.next_delivery_time(["other"]) is None
    assert await store.next_delivery_time([]) is None
    assert await store.claim_deliveries("hook", now + timedelta(seconds=59), 10, 30) == []
    [retried] = await store.claim_deliveries("hook", retry_at, 10, 30)
    assert retried.alert_id == "al-0" and retried.attempts == 2
    assert retried.last_status == 503 and retried.last_error == "503 Service Unavailable"
    assert retried.first_attempt == now  # the retry window runs from the first attempt
    await store.mark_delivered("al-0", "hook", 204, retry_at)

    failed = await store.list_alerts(failed_only=True)
    assert [x.id for x in failed] == ["al-1"]
    assert failed[0].deliveries[0].state == "failed"
    assert failed[0].deliveries[0].last_error == "404 Not Found"
    assert failed[0].deliveries[0].payload is None

    later = now + timedelta(hours=2)
    assert await store.requeue(failed=True, now=later) == 1
    assert await store.list_alerts(failed_only=True) == []
    [back] = await store.claim_deliveries("hook", later, 10, 30)
    assert back.alert_id == "al-1" and back.attempts == 2 and back.first_attempt == later
    await store.mark_failed("al-1", "hook", 410, "410 Gone", later)
    assert await store.requeue("al-1", now=later) == 1
    assert await store.requeue("no-such-alert", now=later) == 0
    with pytest.raises(ValueError, match="alert id or failed"):
        await store.requeue()


async def test_list_alerts_since_and_limit(store: Storage) -> None:
    a, _ = await feed_ids(store)
    before = datetime.now(UTC) - timedelta(seconds=1)
    await store.add_articles([article(a, n, channels=("hook",)) for n in range(3)])
    assert len(await store.list_alerts(since=before)) == 3
    assert await store.list_alerts(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(await store.list_alerts(limit=2)) == 2
    assert all(r.created_at.tzinfo is not None for r in await store.list_alerts())


async def test_two_connections_never_claim_the_same_row(make_store: MakeStore) -> None:
    first, second = await make_store(), await make_store()
    [feed] = (await first.sync_feeds([FeedSpec(FEED_A)])).values()
    await first.add_articles([article(feed.id, n, channels=("hook",)) for n in range(60)])
    now = datetime.now(UTC) + timedelta(seconds=1)
    results = await asyncio.gather(
        *((first if i % 2 else second).claim_deliveries("hook", now, 7, 60) for i in range(12))
    )
    ids = [d.alert_id for batch in results for d in batch]
    assert len(ids) == 60 and len(set(ids)) == 60


# -- record_outcomes: many sends' outcomes in one transaction, in order


async def test_mixed_batch_matches_the_one_by_one_transitions(store: Storage) -> None:
    ids = await seed(store, 3)
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_deliveries("hook", now, 10, 30)
    assert len(claimed) == 3
    done = now + timedelta(seconds=2)
    retry_at = now + timedelta(minutes=5)
    applied = await store.record_outcomes(
        [
            DeliveryOutcome(ids[0], "hook", "delivered", done, status=200, error="ignored"),
            DeliveryOutcome(ids[1], "hook", "pending", done, 503, "HTTP 503", retry_at),
            DeliveryOutcome(ids[2], "hook", "failed", done, status=410, error="HTTP 410 Gone"),
        ]
    )
    assert applied == [True, True, True]
    rows = by_id(await store.list_alerts())
    ok, retry, failed = (rows[(i, "hook")] for i in ids)
    assert ok.state == "delivered" and ok.delivered_at == done and ok.last_status == 200
    assert ok.last_error is None and ok.lease_until is None and ok.last_attempt == now
    assert retry.state == "pending" and retry.next_attempt == retry_at
    assert retry.last_status == 503 and retry.last_error == "HTTP 503"
    assert retry.last_attempt == done and retry.lease_until is None
    assert retry.first_attempt == now and retry.attempts == 1
    assert failed.state == "failed" and failed.last_status == 410
    assert failed.last_error == "HTTP 410 Gone" and failed.last_attempt == done
    assert failed.delivered_at is None and failed.next_attempt == claimed[2].next_attempt
    assert all(d.lease_owner is None for d in rows.values())
    # The retry is claimable at its time, and only then; the others never again.
    assert await store.claim_deliveries("hook", retry_at - timedelta(seconds=1), 10, 30) == []
    [again] = await store.claim_deliveries("hook", retry_at, 10, 30)
    assert again.alert_id == ids[1] and again.attempts == 2
    assert await store.pending_count(["hook"]) == 1


async def test_delivered_is_final_within_and_across_batches(store: Storage) -> None:
    ids = await seed(store, 2)
    now = datetime.now(UTC) + timedelta(seconds=1)
    await store.claim_deliveries("hook", now, 10, 30)
    later = now + timedelta(hours=1)
    # Same row twice in one batch: delivered first, so the late retry is skipped; the other
    # row's retry then failure apply in order (the last one wins).
    applied = await store.record_outcomes(
        [
            DeliveryOutcome(ids[0], "hook", "delivered", now, status=204),
            DeliveryOutcome(ids[0], "hook", "pending", now, 500, "late", later),
            DeliveryOutcome(ids[1], "hook", "pending", now, 503, "busy", later),
            DeliveryOutcome(ids[1], "hook", "failed", now, 404, "gone"),
            DeliveryOutcome("no-such-alert", "hook", "delivered", now, status=200),
        ]
    )
    assert applied == [True, False, True, True, False]
    rows = by_id(await store.list_alerts())
    assert rows[(ids[0], "hook")].state == "delivered"
    assert rows[(ids[0], "hook")].last_status == 204
    assert rows[(ids[1], "hook")].state == "failed"
    assert rows[(ids[1], "hook")].last_error == "gone"
    # A later batch cannot reopen a delivered row either, and requeue leaves it alone.
    assert await store.record_outcomes(
        [DeliveryOutcome(ids[0], "hook", "failed", later, 400, "late failure")]
    ) == [False]
    assert await store.requeue(ids[0], now=later) == 0
    assert by_id(await store.list_alerts())[(ids[0], "hook")].state == "delivered"
    assert await store.claim_deliveries("hook", later + timedelta(days=30), 10, 30) == []


async def test_channels_are_kept_apart(store: Storage) -> None:
    ids = await seed(store, 1, channels=("hook", "slack"))
    now = datetime.now(UTC) + timedelta(seconds=1)
    await store.claim_deliveries("hook", now, 10, 30)
    await store.claim_deliveries("slack", now, 10, 30)
    assert await store.record_outcomes(
        [DeliveryOutcome(ids[0], "hook", "delivered", now, status=200)]
    ) == [True]
    rows = by_id(await store.list_alerts())
    assert rows[(ids[0], "hook")].state == "delivered"
    assert rows[(ids[0], "slack")].state == "in_flight"


async def test_large_batch_is_one_transaction_and_concurrent_claims_stay_consistent(
    store: Storage,
) -> None:
    ids = await seed(store, 600)
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_deliveries("hook", now, 500, 60)
    outcomes = [DeliveryOutcome(d.alert_id, "hook", "delivered", now, status=200) for d in claimed]
    # Claims of the other rows run concurrently with the big write; none sees a half batch.
    applied, *claims = await asyncio.gather(
        store.record_outcomes(outcomes),
        *(store.claim_deliveries("hook", now, 30, 60) for _ in range(5)),
    )
    assert applied == [True] * 500
    taken = [d.alert_id for batch in claims for d in batch]
    assert len(taken) == len(set(taken)) == 100
    assert set(taken) == set(ids) - {d.alert_id for d in claimed}
    assert await store.pending_count(["hook"]) == 100


async def test_bad_outcome_is_a_clear_error_and_writes_nothing(store: Storage) -> None:
    ids = await seed(store, 2)
    now = datetime.now(UTC) + timedelta(seconds=1)
    await store.claim_deliveries("hook", now, 10, 30)
    good = DeliveryOutcome(ids[0], "hook", "delivered", now, status=200)
    with pytest.raises(ValueError, match="needs next_attempt"):
        await store.record_outcomes([good, DeliveryOutcome(ids[1], "hook", "pending", now)])
    with pytest.raises(ValueError, match="must be delivered, pending or failed"):
        await store.record_outcomes([DeliveryOutcome(ids[1], "hook", "in_flight", now)])  # type: ignore[arg-type]
    rows = by_id(await store.list_alerts())
    assert rows[(ids[0], "hook")].state == "in_flight"  # the good one was not written alone
    assert await store.record_outcomes([]) == []


# -- release_deliveries: claims taken back unsent


async def test_release_undoes_an_unsent_claim(store: Storage) -> None:
    ids = await seed(store, 3)
    now = datetime.now(UTC) + timedelta(seconds=1)
    before = by_id(await store.list_alerts())[(ids[1], "hook")]
    # ids[0] was tried once and is due again: its history must survive a release.
    [first] = await store.claim_deliveries("hook", now, 1, 30)
    retry_at = now + timedelta(seconds=5)
    await store.record_outcomes(
        [DeliveryOutcome(first.alert_id, "hook", "pending", now, 503, "busy", retry_at)]
    )
    later = retry_at + timedelta(seconds=1)
    claimed = await store.claim_deliveries("hook", later, 10, 60)
    assert {d.alert_id for d in claimed} == set(ids)
    assert await store.release_deliveries(claimed) == 3
    rows = by_id(await store.list_alerts())
    fresh = rows[(ids[1], "hook")]
    assert fresh.state == "pending" and fresh.attempts == 0 and fresh.lease_until is None
    assert fresh.first_attempt is None and fresh.last_attempt is None
    assert fresh.next_attempt == before.next_attempt
    tried = rows[(ids[0], "hook")]
    assert tried.state == "pending" and tried.attempts == 1
    assert tried.first_attempt == now and tried.last_status == 503
    assert tried.last_error == "busy" and tried.next_attempt == retry_at
    # Due as before: claimable at once, counted as a first attempt again.
    again = await store.claim_deliveries("hook", later, 10, 60)
    assert sorted(d.attempts for d in again) == [1, 1, 2]
    assert {d.alert_id: d.first_attempt for d in again}[ids[2]] == later


async def test_release_leaves_a_row_claimed_again_by_someone_else(store: Storage) -> None:
    ids = await seed(store, 2)
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_deliveries("hook", now, 10, 1)
    # The lease ran out and another claim (a later one) took ids[0]: its lease differs now.
    await store.claim_deliveries("hook", now + timedelta(seconds=2), 1, 60)
    await store.record_outcomes([DeliveryOutcome(ids[1], "hook", "delivered", now, status=200)])
    assert await store.release_deliveries(claimed) == 0
    rows = by_id(await store.list_alerts())
    assert rows[(ids[0], "hook")].state == "in_flight" and rows[(ids[0], "hook")].attempts == 2
    assert rows[(ids[1], "hook")].state == "delivered"
    assert await store.release_deliveries([]) == 0
