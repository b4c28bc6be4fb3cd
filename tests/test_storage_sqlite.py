"""What only SQLite has: the file, its migrations, WAL, the daemon lock, read-only opens, crashes.

Behaviour shared with PostgreSQL is tested once for both in ``tests/storage_contract``.
"""

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

import storage.sqlite.migrate as sqlite_migrate
from storage import open_storage, sqlite_path_from_url
from storage.base import DeliveryOutcome, FeedSpec, StorageError
from storage.postgres import PostgresStorage
from storage.sqlite import (
    BUSY_TIMEOUT_MS,
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    SQLiteStorage,
    split_statements,
)
from tests.storage_contract.data import FEED_A, article

REPO = Path(__file__).resolve().parents[1]


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


async def test_claims_after_a_reconnect_rebuild_what_the_old_connection_held(
    tmp_path: Path,
) -> None:
    """Claims keep the configured feeds' ids in a temp table of the connection; closing and
    opening the same storage object gives a new connection without that table."""
    keys = [f"https://r{i}.example.org/feed" for i in range(3)]
    now = datetime(2024, 6, 1, tzinfo=UTC)
    storage = SQLiteStorage(tmp_path / "fw.db")
    await storage.open("daemon")
    try:
        await storage.sync_feeds([FeedSpec(k) for k in keys])
        assert [f.key for f in await storage.claim_feeds(now, keys, 10, 60)] == keys
        await storage.close()
        await storage.open("daemon")
        later = now + timedelta(minutes=5)  # the leases above ran out
        assert [f.key for f in await storage.claim_feeds(later, keys, 10, 60)] == keys
    finally:
        await storage.close()


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
    pg = open_storage("postgresql://user:hunter2@db.example.org/feedwatch")
    assert isinstance(pg, PostgresStorage) and "hunter2" not in repr(pg)
    assert pg.description == "postgresql://user:***@db.example.org/feedwatch"
    assert isinstance(open_storage("postgresql+psycopg://u@db/x"), PostgresStorage)
    with pytest.raises(StorageError, match="names no SQLite file"):
        sqlite_path_from_url("postgres://u:hunter2@db/x")
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


_DAEMON = """
import asyncio, sys
from datetime import UTC, datetime
from storage.sqlite import SQLiteStorage

async def main() -> None:
    store = SQLiteStorage(sys.argv[1])
    await store.open("daemon")
    await store.register_daemon(datetime.now(UTC), "test", ttl=3600)
    feeds = await store.claim_feeds(datetime.now(UTC), [sys.argv[2]], 10, 3600)
    rows = await store.claim_deliveries("hook", datetime.now(UTC), 100, 3600)
    print(len(feeds), len(rows), flush=True)
    # "polling and sending" when it is killed (bounded, should the test die first)
    await asyncio.wait_for(asyncio.Event().wait(), 60)

asyncio.run(main())
"""


async def test_one_daemon_per_file_and_a_killed_daemons_leases_are_taken_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fw.db"
    store = SQLiteStorage(path)
    await store.open()
    try:
        [feed] = (await store.sync_feeds([FeedSpec(FEED_A)])).values()
        await store.add_articles([article(feed.id, n, channels=("hook",)) for n in range(3)])
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DAEMON, str(path), FEED_A, stdout=subprocess.PIPE, env=env,
            cwd=REPO,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert line.split() == [b"1", b"3"]
            # While it runs: a second daemon is refused, naming it; one-shot commands work.
            second = SQLiteStorage(path)
            with pytest.raises(StorageError) as info:
                await second.open("daemon")
            message = str(info.value)
            assert f"another feedwatch daemon (pid {proc.pid} on {socket.gethostname()})" in message
            assert str(path) in message and "PostgreSQL" in message
            assert await store.requeue(failed=True) == 0
            reader = SQLiteStorage(path)
            await reader.open("readonly")
            assert len(await reader.list_alerts()) == 3
            await reader.close()
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=10)

        # Leased for an hour by a process that is gone: a one-shot command leaves them alone...
        now = datetime.now(UTC) + timedelta(seconds=1)
        assert await store.claim_deliveries("hook", now, 10, 30) == []
        assert await store.claim_feeds(now, [FEED_A], 10, 30) == []
        # ...the next daemon (the kernel dropped the dead one's lock) takes them back at once.
        daemon = SQLiteStorage(path)
        await daemon.open("daemon")
        try:
            again = await daemon.claim_deliveries("hook", now, 10, 30)
            assert len(again) == 3 and all(d.attempts == 2 for d in again)
            assert [f.key for f in await daemon.claim_feeds(now, [FEED_A], 10, 30)] == [FEED_A]
            [dead] = await daemon.list_daemons()
            assert dead.pid == proc.pid and not dead.alive(now)
        finally:
            await daemon.close()
        # Closing released the lock: the next daemon opens.
        third = SQLiteStorage(path)
        await third.open("daemon")
        await third.close()
    finally:
        await store.close()


async def test_read_only_open_creates_nothing_and_never_migrates(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "there" / "fw.db"
    with pytest.raises(StorageError, match="does not exist"):
        await SQLiteStorage(missing).open("readonly")
    path = tmp_path / "fw.db"
    with pytest.raises(StorageError, match="does not exist"):
        await SQLiteStorage(path).open("readonly")
    assert os.listdir(tmp_path) == []  # no file, no -wal, no lock file, no directory

    path.touch()  # an empty file is no feedwatch database, and stays untouched
    with pytest.raises(StorageError, match="no feedwatch data"):
        await SQLiteStorage(path).open("readonly")
    assert path.stat().st_size == 0

    with sqlite3.connect(path) as conn:  # an older schema: refused, not upgraded
        for statement in split_statements(MIGRATIONS[0].sql):
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(StorageError, match=r"schema version 1, older .* `feedwatch run`"):
        await SQLiteStorage(path).open("readonly")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()

    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this feedwatch understands"):
        await SQLiteStorage(path).open("readonly")


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
        feed_columns = {row[1] for row in conn.execute("PRAGMA table_info(feeds)")}
        assert {"lease_owner", "lease_until", "last_polled_by", "config_hash"} <= feed_columns
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "daemons" in tables


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
    monkeypatch.setattr(sqlite_migrate, "MIGRATIONS", [*MIGRATIONS, broken])
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


async def test_a_write_blocked_past_the_busy_timeout_rolls_back_the_whole_batch(
    tmp_path: Path,
) -> None:
    store = SQLiteStorage(tmp_path / "fw.db")
    await store.open()
    try:
        [feed] = (await store.sync_feeds([FeedSpec(FEED_A)])).values()
        await store.add_articles(
            [article(feed.id, n, channels=("hook",), alert_id=f"al-{n}") for n in range(2)]
        )
        ids = ["al-0", "al-1"]
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
                with pytest.raises(StorageError, match=r"locked"):
                    await store.claim_feeds(now, [FEED_A], 1, 30)
            finally:
                await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        states = {d.alert_id: d.state for r in await store.list_alerts() for d in r.deliveries}
        assert states == {"al-0": "in_flight", "al-1": "in_flight"}
        assert await store.record_outcomes(
            [DeliveryOutcome(i, "hook", "delivered", now, status=200) for i in ids]
        ) == [True, True]
    finally:
        await store.close()
