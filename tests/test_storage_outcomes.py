"""record_outcomes on a real SQLite file: many sends' outcomes in one transaction, in order."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import storage.sqlite as sqlite_module
from storage.base import DeliveryOutcome, FeedSpec, NewAlert, NewArticle, StorageError
from storage.sqlite import SQLiteStorage

FEED = "https://a.example.org/rss.xml"


async def seed(store: SQLiteStorage, n: int, channels: tuple[str, ...] = ("hook",)) -> list[str]:
    feeds = await store.sync_feeds([FeedSpec(FEED)])
    feed_id = feeds[FEED].id
    ids = [f"al-{i}" for i in range(n)]
    await store.add_articles(
        [
            NewArticle(
                feed_id=feed_id,
                guid=f"g{i}",
                url=f"https://news.example.org/{i}",
                canonical_url=f"https://news.example.org/{i}",
                title=f"Story {i}",
                alerts=[NewAlert(ids[i], "wl", {"type": "match", "id": ids[i]}, list(channels))],
            )
            for i in range(n)
        ]
    )
    return ids


def by_id(records: list) -> dict:  # type: ignore[type-arg]
    return {(r.id, d.channel): d for r in records for d in r.deliveries}


async def test_mixed_batch_matches_the_one_by_one_transitions(
    store: SQLiteStorage, tmp_path: Path
) -> None:
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
    # The leases are released in the file itself (another process sees it).
    with sqlite3.connect(tmp_path / "fw.db") as raw:
        owners = raw.execute("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL")
        assert owners.fetchone()[0] == 0
    # The retry is claimable at its time, and only then; the others never again.
    assert await store.claim_deliveries("hook", retry_at - timedelta(seconds=1), 10, 30) == []
    [again] = await store.claim_deliveries("hook", retry_at, 10, 30)
    assert again.alert_id == ids[1] and again.attempts == 2
    assert await store.pending_count(["hook"]) == 1


async def test_delivered_is_final_within_and_across_batches(store: SQLiteStorage) -> None:
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


async def test_channels_are_kept_apart(store: SQLiteStorage) -> None:
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
    store: SQLiteStorage,
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


async def test_bad_outcome_is_a_clear_error_and_writes_nothing(store: SQLiteStorage) -> None:
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


async def test_failed_transaction_rolls_back_the_whole_batch(
    store: SQLiteStorage, tmp_path: Path
) -> None:
    ids = await seed(store, 2)
    now = datetime.now(UTC) + timedelta(seconds=1)
    await store.claim_deliveries("hook", now, 10, 30)
    # Another connection holds the write lock past the busy timeout: the batch fails as a
    # StorageError and nothing of it is written.
    blocker = sqlite3.connect(tmp_path / "fw.db", timeout=0.1, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        db = store._require()
        await db.execute("PRAGMA busy_timeout = 100")
        try:
            with pytest.raises(StorageError):
                await store.record_outcomes(
                    [DeliveryOutcome(i, "hook", "delivered", now, status=200) for i in ids]
                )
        finally:
            await db.execute(f"PRAGMA busy_timeout = {sqlite_module.BUSY_TIMEOUT_MS}")
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    rows = by_id(await store.list_alerts())
    assert [rows[(i, "hook")].state for i in ids] == ["in_flight", "in_flight"]
    assert await store.record_outcomes(
        [DeliveryOutcome(i, "hook", "delivered", now, status=200) for i in ids]
    ) == [True, True]


# -- release_deliveries: claims taken back unsent


async def test_release_undoes_an_unsent_claim(store: SQLiteStorage) -> None:
    ids = await seed(store, 3)
    now = datetime.now(UTC) + timedelta(seconds=1)
    before = by_id(await store.list_alerts())[(ids[1], "hook")]
    # ids[1] was tried once and is due again: its history must survive a release.
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


async def test_release_leaves_a_row_claimed_again_by_someone_else(
    store: SQLiteStorage, tmp_path: Path
) -> None:
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
