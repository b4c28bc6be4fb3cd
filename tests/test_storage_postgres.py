"""What only PostgreSQL has: a server that is down at start or goes away mid-run, passwords in
URLs, migrations racing between daemons. Shared behaviour is in ``tests/storage_contract``."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from storage.base import FeedSpec, StorageError
from storage.postgres import LATEST_VERSION, PostgresStorage
from tests.tcpproxy import TcpProxy

FEED = "https://a.example.org/rss.xml"


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
