"""SQLiteStorage against real database files in tmp_path: schema, dedup, outbox, crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import storage.sqlite as sqlite_module
from storage import open_storage, sqlite_path_from_url
from storage.base import FeedSpec, FeedUpdate, NewAlert, NewArticle, StorageError
from storage.sqlite import LATEST_VERSION, MIGRATIONS, Migration, SQLiteStorage, split_statements

REPO = Path(__file__).resolve().parents[1]
FEED_A = "https://a.example.org/rss.xml"
FEED_B = "https://b.example.org/atom.xml"


async def feed_ids(store: SQLiteStorage) -> tuple[int, int]:
    feeds = await store.sync_feeds([FeedSpec(FEED_A, "A"), FeedSpec(FEED_B)])
    return feeds[FEED_A].id, feeds[FEED_B].id


def article(
    feed_id: int,
    n: int,
    *,
    guid: str | None = "same",
    canonical: str | None = "same",
    channels: tuple[str, ...] = (),
    alert_id: str | None = None,
    fetched_at: datetime | None = None,
    not_before: dict[str, datetime] | None = None,
) -> NewArticle:
    """An article numbered ``n``; guid/canonical default to values derived from ``n``."""
    alerts = []
    if channels:
        alerts.append(
            NewAlert(
                id=alert_id or f"alert-{feed_id}-{n}",
                watchlist="wildfire",
                payload={"type": "match", "id": alert_id or f"alert-{feed_id}-{n}", "n": n},
                channels=list(channels),
                not_before=not_before or {},
            )
        )
    return NewArticle(
        feed_id=feed_id,
        guid=f"guid-{n}" if guid == "same" else guid,
        url=f"https://news.example.org/{n}?utm_source=x",
        canonical_url=f"https://news.example.org/{n}" if canonical == "same" else canonical,
        title=f"Title {n} – évacuation",
        summary="summary",
        body="body text",
        published=datetime(2024, 1, 3, 10, 0, tzinfo=UTC),
        fetched_at=fetched_at,
        alerts=alerts,
    )


def raw_count(path: Path, sql: str, params: tuple[object, ...] = ()) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


# -- lifecycle and migrations


async def test_fresh_database_is_migrated_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "dir" / "fw.db"
    storage = SQLiteStorage(path)
    await storage.open()
    assert path.exists()
    assert await storage.schema_version() == LATEST_VERSION >= 1
    feeds = await storage.sync_feeds([FeedSpec(FEED_A, "A")])
    await storage.close()

    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"feeds", "articles", "alerts", "deliveries"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"deliveries_due", "feeds_next_poll", "articles_feed_guid"} <= indexes

    again = SQLiteStorage(path)
    await again.open()
    await again.open()  # a second open() on the same object is a no-op
    try:
        assert await again.schema_version() == LATEST_VERSION
        kept = await again.get_feed(FEED_A)
        assert kept is not None and kept.id == feeds[FEED_A].id and kept.name == "A"
    finally:
        await again.close()
        await again.close()


async def test_database_from_newer_feedwatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fw.db"
    storage = SQLiteStorage(path)
    await storage.open()
    await storage.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    newer = SQLiteStorage(path)
    with pytest.raises(StorageError, match=r"newer than this feedwatch understands"):
        await newer.open()
    # Refusing must not have touched it.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION + 1


async def test_not_a_database_and_directory_give_readable_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is certainly not a sqlite file\n" * 200)
    with pytest.raises(StorageError, match="not a SQLite database") as info:
        await SQLiteStorage(junk).open()
    assert "\n" not in str(info.value)

    with pytest.raises(StorageError, match="is a directory"):
        await SQLiteStorage(tmp_path).open()

    with pytest.raises(StorageError, match="not open"):
        await SQLiteStorage(tmp_path / "never.db").get_feed(FEED_A)


def test_storage_urls() -> None:
    assert sqlite_path_from_url("data/fw.db") == Path("data/fw.db")
    assert sqlite_path_from_url("sqlite:///data/fw.db") == Path("data/fw.db")
    assert sqlite_path_from_url("sqlite:////var/lib/fw.db") == Path("/var/lib/fw.db")
    assert isinstance(open_storage("sqlite:///x.db"), SQLiteStorage)
    with pytest.raises(StorageError, match="PostgreSQL support is not available yet"):
        open_storage("postgresql://user:hunter2@db.example.org/feedwatch")
    with pytest.raises(StorageError, match="unsupported storage url scheme 'mysql'") as info:
        open_storage("mysql://user:hunter2@db.example.org/feedwatch")
    assert "hunter2" not in str(info.value)
    with pytest.raises(StorageError):
        open_storage("  ")


def test_split_statements_keeps_triggers_whole() -> None:
    script = (
        "-- comment; with a semicolon\n"
        "CREATE TABLE t (x INTEGER); -- trailing\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET x = 1;\n  SELECT 1;\nEND;\n"
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(StorageError, match="unterminated"):
        split_statements("CREATE TABLE t (x")


# -- feeds


async def test_sync_feeds_inserts_due_now_updates_names_and_keeps_removed(
    store: SQLiteStorage,
) -> None:
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


async def test_update_feed_keeps_unset_fields_and_counts_errors(store: SQLiteStorage) -> None:
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


async def test_due_feeds_respects_next_poll_retry_after_disabled_and_keys(
    store: SQLiteStorage,
) -> None:
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    keys = [f"https://f{i}.example.org/feed" for i in range(7)]
    feeds = await store.sync_feeds([FeedSpec(k) for k in keys])
    ids = [feeds[k].id for k in keys]
    # f0 never polled (due), f1 due long ago, f2 due a bit ago, f3 future, f4 retry_after future,
    # f5 retry_after past, f6 disabled.
    await store.update_feed(ids[1], FeedUpdate(now, now - timedelta(hours=2)))
    await store.update_feed(ids[2], FeedUpdate(now, now - timedelta(minutes=1)))
    await store.update_feed(ids[3], FeedUpdate(now, now + timedelta(minutes=1)))
    await store.update_feed(
        ids[4], FeedUpdate(now, now - timedelta(hours=1), retry_after=now + timedelta(seconds=5))
    )
    await store.update_feed(
        ids[5], FeedUpdate(now, now - timedelta(minutes=30), retry_after=now - timedelta(seconds=1))
    )
    await store.set_feed_disabled(keys[6], "410 Gone")

    due = await store.due_feeds(now, keys, limit=100)
    assert [f.key for f in due] == [keys[0], keys[1], keys[5], keys[2]]
    assert [f.key for f in await store.due_feeds(now, keys, limit=2)] == keys[:2]
    assert [f.key for f in await store.due_feeds(now, keys[2:4], limit=10)] == [keys[2]]
    assert await store.due_feeds(now, [], limit=10) == []
    later = now + timedelta(seconds=6)
    assert keys[4] in [f.key for f in await store.due_feeds(later, keys, limit=100)]

    disabled = await store.get_feed(keys[6])
    assert disabled is not None and disabled.disabled == "410 Gone"
    await store.set_feed_disabled(keys[3], None)  # not disabled: its schedule is untouched
    assert keys[3] not in [f.key for f in await store.due_feeds(now, keys, limit=100)]
    await store.update_feed(ids[6], FeedUpdate(now, now + timedelta(days=1)))
    await store.set_feed_disabled(keys[6], None)  # re-enabled: due now
    assert keys[6] in [f.key for f in await store.due_feeds(now, keys, limit=100)]
    with pytest.raises(StorageError, match="no feed with key"):
        await store.set_feed_disabled("https://nope.example.org/", "x")


# -- articles, dedup, alerts


async def test_dedup_by_guid_in_feed_and_canonical_url_anywhere(store: SQLiteStorage) -> None:
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

    stored = await store.get_article(first[0] or -1)
    assert stored is not None
    assert stored.title == "Title 1 – évacuation" and stored.feed_name == "A"
    assert stored.published == datetime(2024, 1, 3, 10, 0, tzinfo=UTC)
    assert stored.fetched_at.tzinfo is not None
    assert await store.get_article(10**9) is None
    fa = await store.get_feed(FEED_A)
    assert fa is not None and fa.total_items == 4


async def test_same_article_twice_in_one_batch(store: SQLiteStorage) -> None:
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


async def test_alerts_and_outbox_rows_come_with_new_articles_only(
    store: SQLiteStorage, tmp_path: Path
) -> None:
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
    db = tmp_path / "fw.db"
    assert raw_count(db, "SELECT COUNT(*) FROM alerts") == 1
    assert raw_count(db, "SELECT COUNT(*) FROM deliveries") == 3

    # A digest channel is not claimable before its period ends.
    soon = datetime.now(UTC) + timedelta(seconds=1)
    assert await store.claim_deliveries("phones", soon, 10, 30) == []
    assert len(await store.claim_deliveries("phones", digest_at, 10, 30)) == 1


async def test_a_bad_article_rolls_back_the_whole_call(
    store: SQLiteStorage, tmp_path: Path
) -> None:
    a, _ = await feed_ids(store)
    bad = article(a, 2, channels=("hook",))
    bad.alerts[0].payload = {"when": object()}
    with pytest.raises(StorageError, match="not JSON-serialisable"):
        await store.add_articles([article(a, 1), bad])
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        await store.add_articles([article(a, 1), article(a + 1000, 3)])
    assert raw_count(tmp_path / "fw.db", "SELECT COUNT(*) FROM articles") == 0
    assert await store.add_articles([article(a, 1)]) != [None]  # the connection still works


async def test_concurrent_writers_on_one_storage_do_not_interleave(store: SQLiteStorage) -> None:
    a, b = await feed_ids(store)
    batches = [
        [article(a if n % 2 else b, n * 10 + j, channels=("hook",)) for j in range(5)]
        for n in range(20)
    ]
    results = await asyncio.gather(*(store.add_articles(batch) for batch in batches))
    ids = [i for batch in results for i in batch]
    assert None not in ids and len(set(ids)) == 100
    assert await store.pending_count(["hook"]) == 100


async def test_articles_since(store: SQLiteStorage) -> None:
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


# -- outbox


async def test_claim_lease_expiry_and_reclaim(store: SQLiteStorage) -> None:
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
    assert first.watchlist == "wildfire"
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


async def test_claim_with_a_real_short_lease(store: SQLiteStorage) -> None:
    a, _ = await feed_ids(store)
    await store.add_articles([article(a, 1, channels=("hook",), alert_id="al-1")])
    assert len(await store.claim_deliveries("hook", datetime.now(UTC), 10, lease=0.3)) == 1
    assert await store.claim_deliveries("hook", datetime.now(UTC), 10, lease=0.3) == []
    await asyncio.sleep(0.4)
    [again] = await store.claim_deliveries("hook", datetime.now(UTC), 10, lease=0.3)
    assert again.attempts == 2


async def test_delivered_row_is_final_even_after_retry_fail_or_requeue(
    store: SQLiteStorage,
) -> None:
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
    assert hook.last_error is None and hook.attempts == 1
    assert await store.pending_count(["hook"]) == 0 and await store.pending_count() == 1


async def test_mark_retry_mark_failed_and_requeue(store: SQLiteStorage) -> None:
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


async def test_list_alerts_since_and_limit(store: SQLiteStorage) -> None:
    a, _ = await feed_ids(store)
    before = datetime.now(UTC) - timedelta(seconds=1)
    await store.add_articles([article(a, n, channels=("hook",)) for n in range(3)])
    assert len(await store.list_alerts(since=before)) == 3
    assert await store.list_alerts(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(await store.list_alerts(limit=2)) == 2
    assert all(r.created_at.tzinfo is not None for r in await store.list_alerts())


async def test_two_connections_never_claim_the_same_row(tmp_path: Path) -> None:
    path = tmp_path / "fw.db"
    first, second = SQLiteStorage(path), SQLiteStorage(path)
    await first.open()
    await second.open()
    try:
        [feed] = (await first.sync_feeds([FeedSpec(FEED_A)])).values()
        await first.add_articles([article(feed.id, n, channels=("hook",)) for n in range(60)])
        now = datetime.now(UTC) + timedelta(seconds=1)
        results = await asyncio.gather(
            *((first if i % 2 else second).claim_deliveries("hook", now, 7, 60) for i in range(12))
        )
        ids = [d.alert_id for batch in results for d in batch]
        assert len(ids) == 60 and len(set(ids)) == 60
    finally:
        await first.close()
        await second.close()


# -- crash safety

_WRITER = """
import asyncio, sys
from storage.base import FeedSpec, NewAlert, NewArticle
from storage.sqlite import SQLiteStorage

async def main() -> None:
    store = SQLiteStorage(sys.argv[1])
    await store.open()
    feeds = await store.sync_feeds([FeedSpec("https://a.example.org/rss.xml")])
    feed_id = feeds["https://a.example.org/rss.xml"].id
    for batch in range(100000):
        await store.add_articles([
            NewArticle(feed_id=feed_id, guid=f"g{batch}-{j}", url=None,
                       canonical_url=f"https://n.example.org/{batch}/{j}", title="t",
                       body="x" * 2000,
                       alerts=[NewAlert(id=f"a{batch}-{j}", watchlist="w",
                                        payload={"batch": batch}, channels=["hook"])])
            for j in range(5)
        ])
        print(batch, flush=True)

asyncio.run(main())
"""


async def test_sigkill_mid_write_keeps_committed_data_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "crash" / "fw.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(path), stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    assert proc.stdout is not None
    committed: list[int] = []
    deadline = time.monotonic() + 20
    try:
        while len(committed) < 40 and time.monotonic() < deadline:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
            if not line:
                break
            committed.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    committed += [int(x) for x in rest.split()]
    assert proc.returncode == -signal.SIGKILL
    assert len(committed) >= 40, "the writer did not get going"

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SQLiteStorage(path)
    await store.open()
    try:
        assert await store.schema_version() == LATEST_VERSION
        feed = await store.get_feed(FEED_A)
        assert feed is not None
        guids = [f"g{b}-{j}" for b in committed for j in range(5)]
        known, _ = await store.known_items(feed.id, guids, [])
        assert known == set(guids)
        alerts = {r.id: r for r in await store.list_alerts(limit=100000)}
        for b in committed:
            for j in range(5):
                record = alerts[f"a{b}-{j}"]
                assert [d.channel for d in record.deliveries] == ["hook"]
        # Each batch is all-or-nothing: no half-written batch.
        assert raw_count(path, "SELECT COUNT(*) FROM articles") % 5 == 0
        assert raw_count(path, "SELECT COUNT(*) FROM articles") == raw_count(
            path, "SELECT COUNT(*) FROM deliveries"
        )
        # And it is writable again.
        assert await store.add_articles([article(feed.id, 1)]) != [None]
    finally:
        await store.close()


_CLAIMER = """
import asyncio, sys
from datetime import UTC, datetime
from storage.sqlite import SQLiteStorage

async def main() -> None:
    store = SQLiteStorage(sys.argv[1])
    await store.open()
    rows = await store.claim_deliveries("hook", datetime.now(UTC), 100, 3600)
    print(len(rows), flush=True)
    await asyncio.sleep(60)  # "sending" when it is killed

asyncio.run(main())
"""


async def test_leases_of_a_killed_process_are_taken_back_at_start(tmp_path: Path) -> None:
    path = tmp_path / "fw.db"
    store = SQLiteStorage(path)
    await store.open()
    try:
        [feed] = (await store.sync_feeds([FeedSpec(FEED_A)])).values()
        await store.add_articles([article(feed.id, n, channels=("hook",)) for n in range(3)])
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLAIMER, str(path), stdout=subprocess.PIPE, env=env, cwd=REPO
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=10)
        assert int(line) == 3

        now = datetime.now(UTC) + timedelta(seconds=1)
        assert await store.claim_deliveries("hook", now, 10, 30) == []  # leased for an hour
        assert await store.recover_in_flight(now) == 3
        assert await store.recover_in_flight(now) == 0
        again = await store.claim_deliveries("hook", now, 10, 30)
        assert len(again) == 3 and all(d.attempts == 2 for d in again)

        # Our own leases, a live process's and another host's are left to expire.
        host = socket.gethostname()
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE deliveries SET lease_owner = ? WHERE alert_id = ?",
                (f"{host}:{os.getppid()}:feedbeef", again[0].alert_id),
            )
            conn.execute(
                "UPDATE deliveries SET lease_owner = ? WHERE alert_id = ?",
                (f"elsewhere.example.org:{proc.pid}:feedbeef", again[1].alert_id),
            )
        assert await store.recover_in_flight(now) == 0
        with sqlite3.connect(path) as conn:  # our pid, another token: a dead predecessor
            conn.execute(
                "UPDATE deliveries SET lease_owner = ? WHERE alert_id = ?",
                (f"{host}:{os.getpid()}:0ld0ld00", again[2].alert_id),
            )
        assert await store.recover_in_flight(now) == 1
    finally:
        await store.close()


async def test_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        for statement in split_statements(MIGRATIONS[0].sql):
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO feeds (key, url, created_at) VALUES (?, ?, '2024-01-01T00:00:00.000000Z')",
            (FEED_A, FEED_A),
        )
    store = SQLiteStorage(path)
    await store.open()
    try:
        assert await store.schema_version() == LATEST_VERSION
        kept = await store.get_feed(FEED_A)
        assert kept is not None and kept.next_poll is None
        await store.add_articles([article(kept.id, 1, channels=("hook",))])
        [claimed] = await store.claim_deliveries("hook", datetime.now(UTC), 10, 30)
        assert claimed.state == "in_flight"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
        assert "lease_owner" in columns
        assert conn.execute("SELECT lease_owner FROM deliveries").fetchone()[0] is not None


async def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fw.db"
    store = SQLiteStorage(path)
    await store.open()
    await store.sync_feeds([FeedSpec(FEED_A)])
    await store.close()
    broken = Migration(
        LATEST_VERSION + 1,
        "9999_broken.sql",
        "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
    )
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*MIGRATIONS, broken])
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", LATEST_VERSION + 1)
    with pytest.raises(StorageError, match="no such table"):
        await SQLiteStorage(path).open()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in names and "feeds" in names


async def test_four_connections_opening_a_fresh_database_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fw.db"
    stores = [SQLiteStorage(path) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        versions = await asyncio.gather(*(s.schema_version() for s in stores))
        assert versions == [LATEST_VERSION] * 4
        await asyncio.gather(*(s.sync_feeds([FeedSpec(FEED_A)]) for s in stores))
        assert len(await stores[0].list_feeds()) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
