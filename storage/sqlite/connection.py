"""The SQLite connection: opening by role, pragmas, the daemon lock and transactions.

Why it is built this way:

- One connection (aiosqlite runs it in its own thread) and one ``asyncio.Lock`` around every
  operation, so a multi-statement transaction of one coroutine never swallows the statements of
  another. Other *processes* (``feedwatch alerts retry`` next to the daemon) are serialised by
  SQLite itself: writes use ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout``.
- WAL with ``synchronous=NORMAL``: a committed transaction survives a process crash (SIGKILL);
  only an OS crash or power loss may lose the last few commits, never corrupt the file.
- One daemon per file (``lock.DaemonLock``): SQLite serialises writers, so a second daemon would
  only add contention and double polls. Holding the lock also proves that every lease found in
  the file belongs to a process that is gone, so a starting daemon takes them all back at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import aiosqlite

from storage.base import ROLES, Role, StorageError
from storage.rows import new_identity, utcnow
from storage.sqlite import migrate as migrations
from storage.sqlite.convert import to_db_time
from storage.sqlite.lock import DaemonLock

log = logging.getLogger("storage.sqlite")

BUSY_TIMEOUT_MS = 10_000


class SQLiteBase:
    """Connection handling shared by the concern mixins of ``SQLiteStorage``."""

    def __init__(
        self, path: str | Path, *, identity: str | None = None, search_index: bool = True
    ) -> None:
        self.path = str(path)
        # False: new articles are not indexed for search (only to measure what the index
        # costs: bench/search.py); the next open with True rebuilds the index.
        self._search_index = search_index
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._identity = identity or new_identity()
        self._role: Role | None = None
        self._daemon_lock: DaemonLock | None = None

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def description(self) -> str:
        return f"sqlite:{self.path}"

    @property
    def _in_memory(self) -> bool:
        return self.path == ":memory:" or self.path.startswith("file::memory:")

    # -- lifecycle

    async def open(self, role: Role = "command") -> None:
        """Connect for ``role`` (see ``Storage.open``); a second call is a no-op."""
        if role not in ROLES:
            raise ValueError(f"storage role must be one of {', '.join(ROLES)}: {role!r}")
        if self._db is not None:
            return
        if role == "readonly":
            db = await self._open_readonly()
        else:
            if not self._in_memory:
                await asyncio.to_thread(self._prepare_directory)
                if role == "daemon":
                    self._daemon_lock = DaemonLock(self.path)
                    self._daemon_lock.acquire()
            try:
                db = await self._connect(self.path, uri=False)
                try:
                    await self._configure(db)
                    await migrations.migrate(db, self.path)
                except BaseException as exc:
                    await db.close()
                    raise self._open_error(exc) from exc
            except BaseException:
                self._release_daemon_lock()
                raise
        self._db = db
        self._role = role
        if role == "daemon":
            try:
                await self._take_over_leases()
            except BaseException:
                await self.close()
                raise

    async def _connect(self, target: str, *, uri: bool) -> aiosqlite.Connection:
        try:
            db = await aiosqlite.connect(
                target, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, uri=uri
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        return db

    def _open_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            return StorageError(
                f"cannot open database {self.path}: the file is not a SQLite database "
                "(or is corrupt)"
            )
        if isinstance(exc, sqlite3.Error):
            return StorageError(f"cannot open database {self.path}: {exc}")
        return exc

    async def _open_readonly(self) -> aiosqlite.Connection:
        """Open an existing, current database without writing anything, or say why not."""
        if self._in_memory:
            raise StorageError("an in-memory database cannot be opened read-only")
        target = await asyncio.to_thread(self._existing_file)
        db = await self._connect(f"file:{quote(target)}?mode=ro", uri=True)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = await migrations.user_version(db)
            latest = migrations.LATEST_VERSION
            if version == 0:
                raise StorageError(
                    f"database {self.path} holds no feedwatch data yet (`feedwatch run` sets it up)"
                )
            if version > latest:
                raise StorageError(migrations.too_new(self.path, version, latest))
            if version < latest:
                raise StorageError(migrations.too_old(self.path, version, latest))
        except BaseException as exc:
            await db.close()
            raise self._open_error(exc) from exc
        return db

    def _existing_file(self) -> str:
        """The database's absolute path; a missing file or a directory is a clear error."""
        target = Path(self.path)
        if target.is_dir():
            raise StorageError(f"cannot open database {self.path}: it is a directory")
        if not target.exists():
            raise StorageError(
                f"database {self.path} does not exist (nothing stored yet: `feedwatch run` "
                "creates it)"
            )
        return str(target.resolve())

    def _prepare_directory(self) -> None:
        """Create the database's parent directory; refuse a directory as the database file."""
        target = Path(self.path)
        if target.is_dir():
            raise StorageError(f"cannot open database {self.path}: it is a directory")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the database directory {target.parent}: {exc.strerror or exc}"
            ) from exc

    async def _configure(self, db: aiosqlite.Connection) -> None:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = await self._wal(db)
        if mode != "wal" and not self._in_memory:
            raise StorageError(f"cannot open database {self.path}: WAL mode refused ({mode})")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")

    async def _wal(self, db: aiosqlite.Connection) -> str:
        """Switch to WAL, waiting for others doing the same. Changing the journal mode needs the
        file to itself and SQLite answers "database is locked" at once, without its busy
        handler, while another connection is opening a new file; so wait here, up to the busy
        timeout (the switch is once per file: later opens find it in WAL already)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
        pause = 0.005
        while True:
            try:
                rows = await db.execute_fetchall("PRAGMA journal_mode = WAL")
                return str(next(iter(rows))[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def _take_over_leases(self) -> None:
        """We hold the daemon lock: every lease in the file is a dead process's. End them.

        Deliveries it was sending become pending, due now (sent again with the same
        ``webhook-id``); its feeds are free to poll; daemons it registered are marked dead.
        """
        now = to_db_time(utcnow())
        async with self._write() as db:
            sent = await db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt = MIN(next_attempt, ?), "
                "lease_until = NULL, lease_owner = NULL WHERE state = 'in_flight'",
                (now,),
            )
            feeds = await db.execute(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                "WHERE lease_owner IS NOT NULL"
            )
            await db.execute(
                "UPDATE daemons SET alive_until = ? WHERE stopped_at IS NULL AND alive_until > ?",
                (now, now),
            )
        if sent.rowcount or feeds.rowcount:
            log.info(
                "storage took back the leases of a stopped process deliveries=%d feeds=%d path=%s",
                sent.rowcount,
                feeds.rowcount,
                self.path,
            )

    def _release_daemon_lock(self) -> None:
        if self._daemon_lock is not None:
            self._daemon_lock.release()
            self._daemon_lock = None

    async def close(self) -> None:
        """Close the connection (idempotent); the WAL is checkpointed by SQLite on close."""
        if self._db is None:
            self._release_daemon_lock()
            return
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                if self._role != "readonly":
                    try:
                        await db.execute("PRAGMA optimize")
                    except sqlite3.Error as exc:
                        log.debug("storage optimize failed path=%s error=%s", self.path, exc)
                await db.close()
            self._release_daemon_lock()

    async def schema_version(self) -> int:
        async with self._read() as db:
            return await migrations.user_version(db)

    async def ping(self, timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout), self._read() as db:
                await db.execute_fetchall("SELECT 1")
        except TimeoutError:
            raise StorageError(f"database {self.path} did not answer within {timeout:g}s") from None

    # -- transaction helpers

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError(f"database {self.path} is not open (call open() first)")
        return self._db

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        """Exclusive use of the connection without a transaction; SQLite errors -> StorageError."""
        async with self._lock:
            db = self._require()
            try:
                yield db
            except sqlite3.Error as exc:
                raise StorageError(f"database {self.path}: {exc}") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        async with self._lock:
            db = self._require()
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"database {self.path}: cannot start a write: {exc}") from exc
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    try:
                        await asyncio.shield(db.execute("ROLLBACK"))
                    except sqlite3.Error as rollback_exc:
                        log.error(
                            "storage rollback failed path=%s error=%s", self.path, rollback_exc
                        )
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"database {self.path}: {exc}") from exc
                raise
