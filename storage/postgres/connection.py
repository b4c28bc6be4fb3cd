"""The PostgreSQL connection: a psycopg 3 async pool, opening by role, errors, retries.

Why it is built this way:

- A pool of autocommit connections (``psycopg_pool``): most operations are one statement, so
  they cost one network round trip and are atomic on their own; the few that need several
  statements run them in an explicit transaction. ``round_trips`` counts what is sent, for the
  benchmark.
- Opening retries with backoff while the server is unreachable (it may be starting with the
  machine), logging one line per attempt with the password masked, and gives up with a
  ``StorageError`` after ``open_timeout`` seconds. Errors that retrying cannot fix (a wrong
  password, a missing database) fail at once.
- After opening, nothing retries inside storage: an operation on a server that went away
  raises ``StorageError`` within ``op_timeout`` (the daemon retries it later), the pool drops
  broken connections and keeps reconnecting in the background, and the next operation after
  the server is back simply works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from storage import mask_url
from storage.base import ROLES, Role, StorageError
from storage.postgres import migrate as migrations
from storage.rows import new_identity

log = logging.getLogger("storage.postgres")

# SQLSTATEs worth waiting out at open: the server is starting, shutting down, or full.
_TRANSIENT = frozenset({"57P03", "57P01", "57P02", "53300", "08000", "08001", "08006"})
# libpq's connection failures carry no SQLSTATE; these mean retrying cannot help.
_PERMANENT = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "no password supplied",
    "password is required",
    "invalid connection option",
    "invalid uri",
)

Params = Sequence[Any] | dict[str, Any] | None


def conninfo_from_url(url: str) -> str:
    """libpq takes the URL itself; SQLAlchemy-style ``postgresql+driver://`` loses the driver."""
    scheme, sep, rest = url.strip().partition("://")
    if "+" in scheme:
        scheme = scheme.split("+", 1)[0]
    return f"{scheme}{sep}{rest}"


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (libpq's messages span lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PgBase:
    """Connection handling shared by the concern mixins of ``PostgresStorage``."""

    def __init__(
        self,
        url: str,
        *,
        identity: str | None = None,
        pool_size: int = 10,
        open_timeout: float = 60.0,
        op_timeout: float = 10.0,
        retry_delay: float = 0.5,
    ) -> None:
        self._conninfo = conninfo_from_url(url)
        self._masked = mask_url(url)
        self._identity = identity or new_identity()
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._role: Role | None = None
        self.pool_size = max(2, pool_size)
        self.open_timeout = open_timeout
        self.op_timeout = op_timeout
        self.retry_delay = retry_delay
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"PostgresStorage({self._masked!r})"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def description(self) -> str:
        return self._masked

    def _kwargs(self, role: Role) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, min(10, round(self.op_timeout))),
            "application_name": "feedwatch",
        }
        # Times come back in UTC; a read-only role cannot write even by mistake.
        options = "-c TimeZone=UTC"
        if role == "readonly":
            options += " -c default_transaction_read_only=on"
        kwargs["options"] = options
        return kwargs

    # -- lifecycle

    async def open(self, role: Role = "command") -> None:
        """Connect (retrying while the server is unreachable), migrate, then start the pool."""
        if role not in ROLES:
            raise ValueError(f"storage role must be one of {', '.join(ROLES)}: {role!r}")
        if self._pool is not None:
            return
        kwargs = self._kwargs(role)
        conn = await self._first_connection(kwargs)
        try:
            if role == "readonly":
                await migrations.check_current(conn, self._masked)
            else:
                await migrations.migrate(conn, self._masked)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        finally:
            await conn.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._conninfo,
            kwargs=kwargs,
            # Half the pool kept open: a burst of polls does not wait for new connections.
            min_size=max(1, self.pool_size // 2),
            max_size=self.pool_size,
            open=False,
            timeout=self.op_timeout,
            reconnect_timeout=365 * 86400.0,  # keep trying; operations fail meanwhile
            name="feedwatch",
        )
        try:
            await pool.open(wait=True, timeout=self.op_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise StorageError(
                f"PostgreSQL {self._masked}: the connection pool could not connect within "
                f"{self.op_timeout:g}s"
            ) from exc
        self._pool = pool
        self._role = role
        log.info("storage open backend=postgresql url=%s role=%s", self._masked, role)

    async def _first_connection(self, kwargs: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
        deadline = time.monotonic() + self.open_timeout
        delay = self.retry_delay
        attempt = 0
        while True:
            attempt += 1
            try:
                return await psycopg.AsyncConnection.connect(self._conninfo, **kwargs)
            except psycopg.OperationalError as exc:
                reason = _reason(exc)
                permanent = any(p in reason.lower() for p in _PERMANENT)
                if permanent or (exc.sqlstate is not None and exc.sqlstate not in _TRANSIENT):
                    raise StorageError(
                        f"cannot connect to PostgreSQL {self._masked}: {reason}"
                    ) from exc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StorageError(
                        f"cannot connect to PostgreSQL {self._masked}: {reason} (gave up after "
                        f"{attempt} attempts in {self.open_timeout:g}s)"
                    ) from exc
                wait = min(delay, left)
                log.warning(
                    "storage cannot connect to PostgreSQL url=%s attempt=%d error=%r; "
                    "retrying in %.1fs",
                    self._masked,
                    attempt,
                    reason,
                    wait,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, 10.0)

    async def inspect(self) -> list[str]:
        """What would stop a daemon from using this database, changing nothing (`check`)."""
        try:
            conn = await self._first_connection(self._kwargs("readonly"))
        except StorageError as exc:
            return [str(exc)]
        try:
            version = await migrations.current_version(conn)
        except psycopg.Error as exc:
            return [str(self._error(exc))]
        finally:
            await conn.close()
        if version > migrations.LATEST_VERSION:
            return [migrations.too_new_message(self._masked, version)]
        return []

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def schema_version(self) -> int:
        async with self._conn() as conn:
            return await migrations.current_version(conn)

    async def ping(self, timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._fetch("SELECT 1", None)
        except TimeoutError:
            raise StorageError(
                f"PostgreSQL {self._masked} did not answer within {timeout:g}s"
            ) from None

    # -- helpers

    def _error(self, exc: BaseException) -> StorageError:
        return StorageError(f"PostgreSQL {self._masked}: {_reason(exc)}")

    def _require(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise StorageError(f"PostgreSQL {self._masked} is not open (call open() first)")
        return self._pool

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; driver errors and pool timeouts become ``StorageError``."""
        pool = self._require()
        try:
            async with pool.connection(timeout=self.op_timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageError(
                f"PostgreSQL {self._masked}: no connection within {self.op_timeout:g}s "
                "(is the server up?)"
            ) from exc
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection inside one transaction (rolled back on any error)."""
        async with self._conn() as conn, conn.transaction():
            self.round_trips += 2  # BEGIN, COMMIT
            yield conn

    async def _run(self, conn: psycopg.AsyncConnection[Any], sql: str, params: Params) -> int:
        """Execute one statement; returns the affected row count."""
        self.round_trips += 1
        cur = await conn.execute(sql, params)
        return cur.rowcount

    async def _rows(
        self, conn: psycopg.AsyncConnection[Any], sql: str, params: Params
    ) -> list[dict[str, Any]]:
        self.round_trips += 1
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)
        return await cur.fetchall()

    async def _fetch(self, sql: str, params: Params) -> list[dict[str, Any]]:
        """One statement on a pooled connection (autocommit: atomic by itself)."""
        async with self._conn() as conn:
            return await self._rows(conn, sql, params)
