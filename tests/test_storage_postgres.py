"""What only PostgreSQL has: a server that is down at start or goes away mid-run, passwords in
URLs, migrations racing between daemons. Shared behaviour is in ``tests/storage_contract``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from storage.base import FeedSpec, StorageError
from storage.postgres import LATEST_VERSION, PostgresStorage
from tests.tcpproxy import TcpProxy

FEED = "https://a.example.org/rss.xml"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def via_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}"))


class Lines(logging.Handler):
    """Log lines as they come, with an event for the first retry warning."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.retrying = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if "retrying" in record.getMessage():
            self.retrying.set()


@pytest.fixture
def lines() -> object:
    handler = Lines()
    logger = logging.getLogger("storage")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


async def test_server_down_at_start_retries_then_gives_up_without_the_password(
    pg_url: str, lines: Lines
) -> None:
    password = urlsplit(pg_url).password
    assert password
    down = via_port(pg_url, free_port())
    st = PostgresStorage(down, open_timeout=0.5, retry_delay=0.05)
    with pytest.raises(StorageError) as info:
        await st.open()
    message = str(info.value)
    assert "cannot connect to PostgreSQL" in message and "gave up after" in message
    assert ":***@127.0.0.1" in message and password not in message
    retries = [line for line in lines.lines if "retrying" in line]
    assert len(retries) >= 2 and all(password not in line for line in lines.lines)
    assert ":***@" in retries[0]


async def test_server_coming_up_during_the_retries_is_used(pg_url: str, lines: Lines) -> None:
    target = urlsplit(pg_url)
    proxy = TcpProxy("127.0.0.1", target.port or 5432, port=free_port())
    st = PostgresStorage(via_port(pg_url, proxy.port), open_timeout=60, retry_delay=0.05)
    opening = asyncio.create_task(st.open("daemon"))
    try:
        await asyncio.wait_for(lines.retrying.wait(), 20)
        assert not opening.done()
        await proxy.start()  # the server is up now
        await asyncio.wait_for(opening, 20)
        assert await st.schema_version() == LATEST_VERSION
    finally:
        await st.close()
        await proxy.cut()


async def test_server_going_away_mid_run_fails_operations_promptly_then_recovers(
    pg_url: str,
) -> None:
    target = urlsplit(pg_url)
    proxy = TcpProxy("127.0.0.1", target.port or 5432)
    await proxy.start()
    st = PostgresStorage(via_port(pg_url, proxy.port), op_timeout=2, pool_size=3)
    await st.open("daemon")
    try:
        await st.sync_feeds([FeedSpec(FEED)])
        port = proxy.port
        await proxy.cut()
        now = datetime.now(UTC)
        for _ in range(3):  # pooled connections are broken, new ones cannot be made
            with pytest.raises(StorageError) as info:
                await asyncio.wait_for(st.claim_feeds(now, [FEED], 10, 60), 10)
            assert "***" in str(info.value) or "PostgreSQL" in str(info.value)
        with pytest.raises(StorageError):
            await st.ping(timeout=1)
        # The server is back: after at most the pool's broken connections, work goes on, and
        # nothing was claimed by the failed attempts.
        proxy = TcpProxy("127.0.0.1", target.port or 5432, port=port)
        await proxy.start()
        claimed = None
        for _ in range(st.pool_size + 2):
            try:
                claimed = await st.claim_feeds(now, [FEED], 10, 60)
                break
            except StorageError:
                continue
        assert claimed is not None and [f.key for f in claimed] == [FEED]
        await st.ping()
    finally:
        await st.close()
        await proxy.cut()


async def test_wrong_password_fails_at_once(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    wrong = urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password or "", "nope")))
    st = PostgresStorage(wrong, open_timeout=30)
    with pytest.raises(StorageError, match="password authentication failed") as info:
        await asyncio.wait_for(st.open(), 10)  # no retrying for 30 s
    assert "nope" not in str(info.value)


async def test_daemons_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStorage(pg_url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open("daemon") for s in stores))
        assert await asyncio.gather(*(s.schema_version() for s in stores)) == [LATEST_VERSION] * 4
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT version FROM feedwatch_schema").fetchall()
        assert [r[0] for r in rows] == list(range(1, LATEST_VERSION + 1))
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_newer_schema_is_refused_by_every_role(pg_url: str) -> None:
    st = PostgresStorage(pg_url)
    await st.open()
    await st.close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO feedwatch_schema (version) VALUES (%s)", (LATEST_VERSION + 1,))
    for role in ("readonly", "command", "daemon"):
        with pytest.raises(StorageError, match="newer than this feedwatch understands"):
            await PostgresStorage(pg_url).open(role)  # type: ignore[arg-type]


async def test_times_come_back_in_utc_whatever_the_server_zone(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        name = urlsplit(pg_url).path.lstrip("/")
        conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Asia/Kathmandu'")
    st = PostgresStorage(pg_url)
    await st.open()
    try:
        [feed] = (await st.sync_feeds([FeedSpec(FEED)])).values()
        now = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
        [claimed] = await st.claim_feeds(now, [FEED], 1, 60)
        assert claimed.id == feed.id and claimed.lease_until == now + timedelta(seconds=60)
        assert claimed.lease_until.utcoffset() == timedelta(0)
    finally:
        await st.close()


_DAEMON = """
import asyncio, sys
from datetime import UTC, datetime
from storage.postgres import PostgresStorage

async def main() -> None:
    store = PostgresStorage(sys.argv[1])
    await store.open("daemon")
    await store.register_daemon(datetime.now(UTC), "test", ttl=float(sys.argv[3]))
    feeds = await store.claim_feeds(datetime.now(UTC), [sys.argv[2]], 10, 3600)
    rows = await store.claim_deliveries("hook", datetime.now(UTC), 100, 3600)
    print(store.identity, len(feeds), len(rows), flush=True)
    # "polling and sending" when it is killed (bounded, should the test die first)
    await asyncio.wait_for(asyncio.Event().wait(), 120)

asyncio.run(main())
"""


async def test_a_sigkilled_daemons_work_is_taken_over_once_its_heartbeat_lapses(
    pg_url: str,
) -> None:
    """A real process, killed with SIGKILL mid-work: its hour-long leases do not hold up the
    others beyond its registration's lifetime (30 s here, judged by the claim's clock)."""
    from tests.storage_contract.data import article

    other = PostgresStorage(pg_url)
    await other.open("daemon")
    try:
        [feed] = (await other.sync_feeds([FeedSpec(FEED)])).values()
        await other.add_articles([article(feed.id, n, channels=("hook",)) for n in range(4)])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DAEMON, pg_url, FEED, "30", stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
        dead_id, n_feeds, n_rows = line[0], int(line[1]), int(line[2])
        assert (n_feeds, n_rows) == (1, 4) and dead_id.split(":")[1] == str(proc.pid)

        now = datetime.now(UTC)
        await other.register_daemon(now, "test", ttl=300)
        assert await other.claim_feeds(now, [FEED], 10, 60) == []  # it may still be alive
        assert await other.claim_deliveries("hook", now, 10, 60) == []
        lapsed = now + timedelta(seconds=31)
        [taken] = await other.claim_feeds(lapsed, [FEED], 10, 60)
        assert taken.lease_owner == other.identity
        rows = await other.claim_deliveries("hook", lapsed, 10, 60)
        assert len(rows) == 4 and all(r.attempts == 2 for r in rows)
        dead = {d.id: d for d in await other.list_daemons()}[dead_id]
        assert dead.pid == proc.pid and not dead.alive(lapsed) and dead.stopped_at is None
    finally:
        await other.close()


async def test_claims_take_exactly_the_configured_feeds_not_others_between_their_ids(
    pg_url: str,
) -> None:
    """Claims name the configured feeds by id ranges; a feed dropped from the config whose id
    lies between theirs is never claimed, and keys this process did not sync still work."""
    keys = [f"https://f{i}.example.org/rss" for i in range(6)]
    st, other = PostgresStorage(pg_url), PostgresStorage(pg_url)
    await st.open()
    await other.open()
    try:
        synced = await st.sync_feeds([FeedSpec(k) for k in keys])
        assert [synced[k].id for k in keys] == list(
            range(synced[keys[0]].id, synced[keys[0]].id + 6)
        )
        configured = [keys[0], keys[1], keys[3], keys[5]]  # 2 and 4 were dropped from the config
        now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        got = await st.claim_feeds(now, configured, 10, 60)
        assert sorted(f.key for f in got) == sorted(configured)
        assert sorted(f.key for f in await st.list_feeds(configured)) == sorted(configured)
        # Another process that never synced these keys: the same answer by key.
        later = now + timedelta(seconds=120)
        got = await other.claim_feeds(later, [keys[2], keys[3]], 10, 60)
        assert sorted(f.key for f in got) == [keys[2], keys[3]]
    finally:
        await st.close()
        await other.close()


async def test_a_large_sync_gives_the_planner_statistics_at_once(pg_url: str) -> None:
    """Without them the planner takes the new table for empty until autovacuum comes by, and a
    claim over 10,000 keys ran as a nested loop for 20 s."""
    st = PostgresStorage(pg_url)
    await st.open()
    try:
        await st.sync_feeds([FeedSpec(f"https://f{i}.example.org/rss") for i in range(600)])
        with psycopg.connect(pg_url) as conn:
            (tuples,) = conn.execute(
                "SELECT reltuples FROM pg_class WHERE relname = 'feeds'"
            ).fetchone()
        assert tuples == 600
    finally:
        await st.close()


def test_id_ranges() -> None:
    from storage.postgres.feeds import id_ranges

    assert id_ranges([7, 1, 2, 3, 3, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
    assert id_ranges([]) == []


def test_the_faster_fold_folds_every_string_as_the_first_one_did(pg_url: str) -> None:
    """Migration 4 rewrote ``feedwatch_fold`` for speed; stored search columns (folded by the
    version-3 function) must keep matching queries folded by the new one."""
    import random
    import re

    asyncio.run(_open_close(pg_url))
    v3 = (REPO / "storage/migrations/postgres/0003_search_and_history.sql").read_text()
    old = re.search(r"CREATE FUNCTION feedwatch_fold\(t text\).*?\$\$;", v3, re.S)
    assert old is not None
    mapped = re.search(r"translate\(feedwatch_lower\(t\),\s*'(.*?)',", old.group(0), re.S)
    assert mapped is not None
    rng = random.Random(4)
    alphabet = (
        mapped.group(1).replace("''", "'")
        + "abcxyzABCXYZ0189 \t\n.,;'\"-"
        + "ёЁйЙїЇґҐΆάΩωßẞæÆœŒøØłŁđĐħĦıİ"  # other scripts and letters the map leaves alone
        + "日本語😀\u0301\u00a0\u2009"
    )
    samples = [alphabet, "Officials issued an “evacuation order” — fire’s spread"]
    samples += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(3000)
    ]
    samples += ["plain ascii words, only " * rng.randint(1, 5) for _ in range(20)]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            old.group(0).replace("FUNCTION feedwatch_fold(", "FUNCTION feedwatch_fold_v3(")
        )
        (differ,) = conn.execute(
            "SELECT count(*) FROM unnest(%s::text[]) AS s(t) "
            "WHERE feedwatch_fold(t) IS DISTINCT FROM feedwatch_fold_v3(t)",
            (samples,),
        ).fetchone()
    assert differ == 0


async def _open_close(url: str) -> None:
    st = PostgresStorage(url)
    await st.open()
    await st.close()
