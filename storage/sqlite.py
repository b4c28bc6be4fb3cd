"""SQLite implementation of ``Storage``: one aiosqlite connection, WAL, versioned migrations.

Why it is built this way:

- One connection (aiosqlite runs it in its own thread) and one ``asyncio.Lock`` around every
  operation, so a multi-statement transaction of one coroutine never swallows the statements of
  another. Other *processes* (``feedwatch alerts retry`` next to the daemon) are serialised by
  SQLite itself: writes use ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout``.
- WAL with ``synchronous=NORMAL``: a committed transaction survives a process crash (SIGKILL);
  only an OS crash or power loss may lose the last few commits, never corrupt the file.
- Times are stored as fixed-width UTC text (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so text order is
  time order, the file is readable with the ``sqlite3`` shell, and values round-trip exactly.
- The schema version is ``PRAGMA user_version``; migrations are ``migrations/NNNN_name.sql``,
  applied in order inside one ``BEGIN IMMEDIATE`` transaction, and never drop data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from storage.base import (
    AlertRecord,
    Article,
    Delivery,
    DeliveryOutcome,
    FeedSpec,
    FeedState,
    FeedUpdate,
    NewArticle,
    StorageError,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# Who holds a lease: host, pid and a per-process token (a recycled pid is told apart).
_HOST = socket.gethostname()
LEASE_OWNER = f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# FeedUpdate fields that keep the stored value when left as ``...``.
_OPTIONAL_FEED_FIELDS = (
    "etag",
    "last_modified",
    "body_hash",
    "url",
    "title",
    "disabled",
    "retry_after",
    "interval",
    "items_per_day",
    "ttl",
)
_TIME_FEED_FIELDS = frozenset({"retry_after"})

_FEED_COLUMNS = (
    "f.id, f.key, f.url, COALESCE(f.name, f.title) AS display_name, f.title, f.etag, "
    "f.last_modified, f.body_hash, f.last_poll, f.last_success, f.next_poll, f.http_status, "
    "f.error_count, f.last_error, f.disabled, f.retry_after, f.interval, f.items_per_day, "
    "f.ttl, f.total_items, f.extra"
)
_ARTICLE_COLUMNS = (
    "a.id, a.feed_id, a.guid, a.url, a.canonical_url, a.title, a.summary, a.body, a.author, "
    "a.published, a.language, a.extract_error, a.fetched_at, "
    "COALESCE(f.name, f.title) AS feed_name"
)
_DELIVERY_COLUMNS = (
    "d.alert_id, d.channel, d.state, d.attempts, d.next_attempt, d.created_at, "
    "d.first_attempt, d.last_attempt, d.last_status, d.last_error, d.delivered_at, d.lease_until"
)


# -- time and JSON helpers


def to_db_time(value: datetime) -> str:
    """Fixed-width UTC text; naive datetimes are taken as UTC (the whole codebase uses UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    else:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else to_db_time(value)


def from_db_time(value: str | None) -> datetime | None:
    """Parse stored text back into an aware UTC datetime."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _req_time(value: str) -> datetime:
    parsed = from_db_time(value)
    assert parsed is not None  # NOT NULL column
    return parsed


def _now() -> datetime:
    return datetime.now(UTC)


def _json_list(values: Iterable[str]) -> str:
    """A list passed as one JSON parameter and unpacked by ``json_each``: no 10,000-item IN list."""
    return json.dumps(list(values), ensure_ascii=False)


def _dump_payload(alert_id: str, payload: dict[str, Any]) -> str:
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"alert {alert_id}: payload is not JSON-serialisable: {exc}") from exc


# -- migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The bundled migrations in order; their versions must run 1, 2, 3... without gaps."""
    folder = resources.files("storage") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StorageError(f"migration {migration.name}: expected version {expected:04d}")
    return found


def split_statements(script: str) -> list[str]:
    """Split a migration into statements, so they can run inside our own transaction.

    (``executescript`` would commit first and could not be rolled back as a whole.)
    """
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise StorageError(f"migration has an unterminated statement: {current.strip()[:60]!r}")
    return statements


MIGRATIONS = load_migrations()
LATEST_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 0


# -- inspection without side effects


def inspect_database(path: Path) -> list[str]:
    """What would stop a daemon from opening ``path``; creates and changes nothing."""
    if str(path) == ":memory:":
        return []
    if path.is_dir():
        return [f"{path} is a directory, not a database file"]
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return [f"cannot create the database {path}: {parent} is not writable"]
        return []
    problems = []
    if not os.access(path, os.R_OK | os.W_OK):
        problems.append(f"the database {path} is not readable and writable by this user")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        problems.append(
            f"the folder {path.parent} is not writable (SQLite writes its journal there)"
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [*problems, f"{path} is not a feedwatch database ({exc})"]
    if version > LATEST_VERSION:
        problems.append(
            f"the database {path} has schema version {version}, newer than this feedwatch knows "
            f"({LATEST_VERSION}): upgrade feedwatch"
        )
    return problems


# -- row mapping


def _feed(row: sqlite3.Row) -> FeedState:
    try:
        extra = json.loads(row["extra"]) if row["extra"] else {}
    except ValueError:
        extra = {}
    return FeedState(
        id=row["id"],
        key=row["key"],
        url=row["url"],
        name=row["display_name"],
        title=row["title"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_poll=from_db_time(row["last_poll"]),
        last_success=from_db_time(row["last_success"]),
        next_poll=from_db_time(row["next_poll"]),
        http_status=row["http_status"],
        error_count=row["error_count"],
        last_error=row["last_error"],
        disabled=row["disabled"],
        retry_after=from_db_time(row["retry_after"]),
        interval=row["interval"],
        items_per_day=row["items_per_day"],
        ttl=row["ttl"],
        total_items=row["total_items"],
        extra=extra if isinstance(extra, dict) else {},
    )


async def _feeds(rows: Iterable[sqlite3.Row]) -> list[FeedState]:
    """Rows to FeedStates, yielding to the event loop every 500 (10,000 rows take ~0.1 s)."""
    out: list[FeedState] = []
    for i, row in enumerate(rows):
        if i and i % 500 == 0:
            await asyncio.sleep(0)
        out.append(_feed(row))
    return out


def _article(row: sqlite3.Row) -> Article:
    return Article(
        id=row["id"],
        feed_id=row["feed_id"],
        guid=row["guid"],
        url=row["url"],
        canonical_url=row["canonical_url"],
        title=row["title"],
        summary=row["summary"],
        body=row["body"],
        author=row["author"],
        published=from_db_time(row["published"]),
        language=row["language"],
        extract_error=row["extract_error"],
        fetched_at=_req_time(row["fetched_at"]),
        feed_name=row["feed_name"],
    )


def _delivery(row: sqlite3.Row, with_payload: bool = False) -> Delivery:
    delivery = Delivery(
        alert_id=row["alert_id"],
        channel=row["channel"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt=_req_time(row["next_attempt"]),
        created_at=_req_time(row["created_at"]),
        first_attempt=from_db_time(row["first_attempt"]),
        last_attempt=from_db_time(row["last_attempt"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        delivered_at=from_db_time(row["delivered_at"]),
        lease_until=from_db_time(row["lease_until"]),
    )
    if with_payload:
        delivery.payload = json.loads(row["payload"])
        delivery.watchlist = row["watchlist"]
    return delivery


_RECORD_OUTCOMES_SQL = (
    "UPDATE deliveries SET state = o.o_state, "
    "delivered_at = CASE WHEN o.o_state = 'delivered' THEN o.o_at ELSE delivered_at END, "
    "next_attempt = CASE WHEN o.o_state = 'pending' THEN o.o_next ELSE next_attempt END, "
    "last_attempt = CASE WHEN o.o_state = 'delivered' THEN last_attempt ELSE o.o_at END, "
    "last_status = o.o_status, last_error = o.o_error, lease_until = NULL, lease_owner = NULL "
    "FROM (SELECT json_extract(value, '$[0]') AS o_alert, json_extract(value, '$[1]') AS o_channel, "
    "  json_extract(value, '$[2]') AS o_state, json_extract(value, '$[3]') AS o_at, "
    "  json_extract(value, '$[4]') AS o_status, json_extract(value, '$[5]') AS o_error, "
    "  json_extract(value, '$[6]') AS o_next FROM json_each(?)) AS o "
    "WHERE deliveries.alert_id = o.o_alert AND deliveries.channel = o.o_channel "
    "AND deliveries.state != 'delivered' "
    "RETURNING alert_id, channel"
)


def _outcome_params(o: DeliveryOutcome) -> list[Any]:
    """One outcome as a JSON array for ``_RECORD_OUTCOMES_SQL``; bad input is a ValueError."""
    if o.state not in ("delivered", "pending", "failed"):
        raise ValueError(
            f"delivery outcome state must be delivered, pending or failed: {o.state!r}"
        )
    if o.state == "pending" and o.next_attempt is None:
        raise ValueError(f"a retry outcome needs next_attempt (alert {o.alert_id})")
    return [
        o.alert_id,
        o.channel,
        o.state,
        to_db_time(o.at),
        o.status,
        None if o.state == "delivered" else o.error,
        _opt_time(o.next_attempt) if o.state == "pending" else None,
    ]


def _owner_is_dead(owner: str) -> bool:
    """True only when the lease owner ("host:pid:token") certainly no longer runs."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid_text, _token = parts
    if host != _HOST:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # another incarnation with our pid: it is gone (our own token was excluded)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists but not ours (EPERM), or cannot tell
    return False


def _feed_update_sql(feed_id: int, update: FeedUpdate) -> tuple[str, list[Any]]:
    """The UPDATE statement and parameters for one poll outcome (``...`` fields left alone)."""
    assignments = [
        "last_poll = ?",
        "next_poll = ?",
        "http_status = ?",
        "last_error = ?",
        "error_count = CASE WHEN ? THEN 0 ELSE error_count + 1 END",
        "last_success = CASE WHEN ? THEN ? ELSE last_success END",
    ]
    last_poll = to_db_time(update.last_poll)
    params: list[Any] = [
        last_poll,
        to_db_time(update.next_poll),
        update.http_status,
        update.error,
        update.ok,
        update.ok,
        last_poll,
    ]
    for name in _OPTIONAL_FEED_FIELDS:
        value = getattr(update, name)
        if value is ...:
            continue
        if name in _TIME_FEED_FIELDS and value is not None:
            value = to_db_time(value)
        assignments.append(f"{name} = ?")
        params.append(value)
    params.append(feed_id)
    return f"UPDATE feeds SET {', '.join(assignments)} WHERE id = ?", params


class SQLiteStorage:
    """``Storage`` on one SQLite file. Safe to share between the tasks of one event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    # -- lifecycle

    async def open(self) -> None:
        """Connect, set the pragmas and apply pending migrations; idempotent."""
        if self._db is not None:
            return
        in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        if not in_memory:
            await asyncio.to_thread(self._prepare_directory)
        try:
            db = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        try:
            await self._configure(db, in_memory)
            await self._migrate(db)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                raise StorageError(
                    f"cannot open database {self.path}: the file is not a SQLite database "
                    "(or is corrupt)"
                ) from exc
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open database {self.path}: {exc}") from exc
            raise
        self._db = db

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

    async def _configure(self, db: aiosqlite.Connection, in_memory: bool) -> None:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        rows = await db.execute_fetchall("PRAGMA journal_mode = WAL")
        mode = str(next(iter(rows))[0]).lower()
        if mode != "wal" and not in_memory:
            raise StorageError(f"cannot open database {self.path}: WAL mode refused ({mode})")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        version = await self._user_version(db)
        if version > LATEST_VERSION:
            raise StorageError(self._too_new(version))
        if version == LATEST_VERSION:
            return
        await db.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            start = await self._user_version(db)
            if start > LATEST_VERSION:
                raise StorageError(self._too_new(start))
            for migration in MIGRATIONS[start:]:
                for statement in split_statements(migration.sql):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {migration.version}")
            await db.execute("COMMIT")
        except BaseException:
            await asyncio.shield(db.execute("ROLLBACK"))
            raise
        if start < LATEST_VERSION:
            log.info("storage migrated path=%s from=%d to=%d", self.path, start, LATEST_VERSION)

    def _too_new(self, version: int) -> str:
        return (
            f"database {self.path} has schema version {version}, newer than this feedwatch "
            f"understands ({LATEST_VERSION}); upgrade feedwatch or use another database"
        )

    @staticmethod
    async def _user_version(db: aiosqlite.Connection) -> int:
        rows = await db.execute_fetchall("PRAGMA user_version")
        return int(next(iter(rows))[0])

    async def close(self) -> None:
        """Close the connection (idempotent); the WAL is checkpointed by SQLite on close."""
        if self._db is None:
            return
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                try:
                    await db.execute("PRAGMA optimize")
                except sqlite3.Error as exc:
                    log.debug("storage optimize failed path=%s error=%s", self.path, exc)
                await db.close()

    async def schema_version(self) -> int:
        async with self._read() as db:
            return await self._user_version(db)

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

    # -- feeds

    async def sync_feeds(self, feeds: list[FeedSpec]) -> dict[str, FeedState]:
        """Insert new feeds (due now: next_poll NULL), refresh configured names, return by key."""
        if not feeds:
            return {}
        now = to_db_time(_now())
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO feeds (key, url, name, config_hash, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
                "config_hash = coalesce(excluded.config_hash, feeds.config_hash), "
                # An edited config entry re-enables a disabled feed and makes it due now.
                "disabled = CASE WHEN excluded.config_hash IS NOT NULL "
                "AND feeds.config_hash IS NOT excluded.config_hash THEN NULL ELSE feeds.disabled END, "
                "next_poll = CASE WHEN feeds.disabled IS NOT NULL AND excluded.config_hash IS NOT NULL "
                "AND feeds.config_hash IS NOT excluded.config_hash THEN NULL ELSE feeds.next_poll END "
                "WHERE feeds.name IS NOT excluded.name "
                "OR (excluded.config_hash IS NOT NULL AND feeds.config_hash IS NOT excluded.config_hash)",
                [(spec.key, spec.key, spec.name, spec.fingerprint, now) for spec in feeds],
            )
            rows = await db.execute_fetchall(
                f"SELECT {_FEED_COLUMNS} FROM feeds f "
                "WHERE f.key IN (SELECT value FROM json_each(?))",
                (_json_list(spec.key for spec in feeds),),
            )
        return {row["key"]: _feed(row) for row in rows}

    async def get_feed(self, key: str) -> FeedState | None:
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {_FEED_COLUMNS} FROM feeds f WHERE f.key = ?", (key,)
                )
            )
        return _feed(rows[0]) if rows else None

    async def list_feeds(self, keys: list[str] | None = None) -> list[FeedState]:
        """All feeds (``keys`` None) or the given ones, in creation order."""
        async with self._read() as db:
            if keys is None:
                rows = await db.execute_fetchall(
                    f"SELECT {_FEED_COLUMNS} FROM feeds f ORDER BY f.id"
                )
            else:
                rows = await db.execute_fetchall(
                    f"SELECT {_FEED_COLUMNS} FROM feeds f "
                    "WHERE f.key IN (SELECT value FROM json_each(?)) ORDER BY f.id",
                    (_json_list(keys),),
                )
        return await _feeds(rows)

    async def due_feeds(self, now: datetime, keys: list[str], limit: int) -> list[FeedState]:
        """Enabled feeds among ``keys`` due by next_poll and retry_after; never-polled first."""
        if not keys or limit <= 0:
            return []
        at = to_db_time(now)
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT {_FEED_COLUMNS} FROM feeds f "
                "WHERE f.key IN (SELECT value FROM json_each(?)) AND f.disabled IS NULL "
                "AND (f.next_poll IS NULL OR f.next_poll <= ?) "
                "AND (f.retry_after IS NULL OR f.retry_after <= ?) "
                "ORDER BY f.next_poll, f.id LIMIT ?",
                (_json_list(keys), at, at, limit),
            )
        return [_feed(row) for row in rows]

    async def update_feed(self, feed_id: int, update: FeedUpdate) -> None:
        """Apply one poll's outcome; ``...`` fields keep their stored value."""
        sql, params = _feed_update_sql(feed_id, update)
        async with self._write() as db:
            cursor = await db.execute(sql, params)
            if cursor.rowcount == 0:
                raise StorageError(f"no feed with id {feed_id}")

    async def update_feeds(self, updates: list[tuple[int, FeedUpdate]]) -> None:
        """Apply many polls' outcomes in one transaction (10,000 feeds: one commit per batch).

        Updates that set the same fields share one ``executemany``. All or nothing: an unknown
        feed id rolls the whole batch back and raises ``StorageError``.
        """
        if not updates:
            return
        groups: dict[str, list[list[Any]]] = {}
        for feed_id, update in updates:
            sql, params = _feed_update_sql(feed_id, update)
            groups.setdefault(sql, []).append(params)
        async with self._write() as db:
            changed = 0
            for sql, rows in groups.items():
                cursor = await db.executemany(sql, rows)
                changed += cursor.rowcount
            if changed != len(updates):
                raise StorageError(
                    f"{len(updates) - changed} of {len(updates)} feed updates name no feed"
                )

    async def set_feed_disabled(self, key: str, reason: str | None) -> None:
        """Disable with a reason, or re-enable (None): a re-enabled feed is due now.

        Raises ``StorageError`` for an unknown key, so a typo on the command line is reported.
        """
        async with self._write() as db:
            if reason is not None:
                cursor = await db.execute(
                    "UPDATE feeds SET disabled = ? WHERE key = ?", (reason, key)
                )
            else:
                cursor = await db.execute(
                    "UPDATE feeds SET disabled = NULL, "
                    "next_poll = CASE WHEN disabled IS NULL THEN next_poll END, "
                    "retry_after = CASE WHEN disabled IS NULL THEN retry_after END "
                    "WHERE key = ?",
                    (key,),
                )
            if cursor.rowcount == 0:
                raise StorageError(f"no feed with key {key}")

    # -- articles and alerts

    async def known_items(
        self, feed_id: int, guids: list[str], canonical_urls: list[str]
    ) -> tuple[set[str], set[str]]:
        """Which GUIDs (in this feed) and canonical URLs (anywhere) are already stored."""
        known_guids: set[str] = set()
        known_urls: set[str] = set()
        async with self._read() as db:
            if guids:
                rows = await db.execute_fetchall(
                    "SELECT guid FROM articles WHERE feed_id = ? "
                    "AND guid IN (SELECT value FROM json_each(?))",
                    (feed_id, _json_list(guids)),
                )
                known_guids = {row[0] for row in rows}
            if canonical_urls:
                rows = await db.execute_fetchall(
                    "SELECT canonical_url FROM articles "
                    "WHERE canonical_url IN (SELECT value FROM json_each(?))",
                    (_json_list(canonical_urls),),
                )
                known_urls = {row[0] for row in rows}
        return known_guids, known_urls

    async def add_articles(self, articles: list[NewArticle]) -> list[int | None]:
        """Store articles with their alerts and outbox rows in one transaction per call.

        A duplicate (same GUID in its feed, or same canonical URL anywhere, including earlier in
        this batch) yields None and writes no alerts. Alerts are written once (an existing alert
        id is left alone, with no new outbox rows), so a 2xx can never be repeated through here.
        Any other error rolls the whole call back and raises ``StorageError``.
        """
        if not articles:
            return []
        now = _now()
        now_text = to_db_time(now)
        payloads = [
            [_dump_payload(alert.id, alert.payload) for alert in article.alerts]
            for article in articles
        ]
        rows = [
            (
                article.feed_id,
                article.guid,
                article.url,
                article.canonical_url,
                article.title,
                article.summary,
                article.body,
                article.author,
                _opt_time(article.published),
                article.language,
                article.extract_error,
                to_db_time(article.fetched_at or now),
            )
            for article in articles
        ]
        results: list[int | None] = []
        per_feed: dict[int, int] = {}
        async with self._write() as db:
            # One executemany instead of one INSERT ... RETURNING per article (a thread hop
            # each). Under the write lock every new row gets an id above the current maximum,
            # in insertion order, so the rows above it are exactly the ones inserted.
            top = await db.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM articles")
            before = int(next(iter(top))[0])
            await db.executemany(
                "INSERT INTO articles (feed_id, guid, url, canonical_url, title, summary, "
                "body, author, published, language, extract_error, fetched_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )
            inserted = list(
                await db.execute_fetchall(
                    "SELECT id, feed_id, guid, canonical_url FROM articles WHERE id > ? "
                    "ORDER BY id",
                    (before,),
                )
            )
            pos = 0
            for article in articles:
                row = inserted[pos] if pos < len(inserted) else None
                if row is not None and (row[1], row[2], row[3]) == (
                    article.feed_id,
                    article.guid,
                    article.canonical_url,
                ):
                    results.append(int(row[0]))
                    pos += 1
                else:
                    results.append(None)  # a duplicate: nothing was inserted for it
            if pos != len(inserted):
                raise StorageError(
                    f"database {self.path}: {len(inserted) - pos} inserted articles could not "
                    "be matched to the batch"
                )
            for article, alert_payloads, article_id in zip(
                articles, payloads, results, strict=True
            ):
                if article_id is None:
                    continue
                per_feed[article.feed_id] = per_feed.get(article.feed_id, 0) + 1
                if not article.alerts:
                    continue
                # Alerts are stamped with the caller's time (its clock), not the database's.
                now_text = to_db_time(article.fetched_at or now)
                outbox: list[tuple[str, str, str, str]] = []
                for alert, payload in zip(article.alerts, alert_payloads, strict=True):
                    alert_row = list(
                        await db.execute_fetchall(
                            "INSERT INTO alerts (id, watchlist, article_id, created_at, payload) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                            (alert.id, alert.watchlist, article_id, now_text, payload),
                        )
                    )
                    if not alert_row:
                        log.warning(
                            "alert exists already alert=%s watchlist=%s article=%d",
                            alert.id,
                            alert.watchlist,
                            article_id,
                        )
                        continue
                    for channel in dict.fromkeys(alert.channels):
                        not_before = alert.not_before.get(channel)
                        outbox.append(
                            (
                                alert.id,
                                channel,
                                to_db_time(not_before) if not_before else now_text,
                                now_text,
                            )
                        )
                if outbox:
                    await db.executemany(
                        "INSERT INTO deliveries (alert_id, channel, next_attempt, created_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        outbox,
                    )
            if per_feed:
                await db.executemany(
                    "UPDATE feeds SET total_items = total_items + ? WHERE id = ?",
                    [(count, feed_id) for feed_id, count in per_feed.items()],
                )
        return results

    async def get_article(self, article_id: int) -> Article | None:
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {_ARTICLE_COLUMNS} FROM articles a "
                    "JOIN feeds f ON f.id = a.feed_id WHERE a.id = ?",
                    (article_id,),
                )
            )
        return _article(rows[0]) if rows else None

    async def articles_since(self, since: datetime, limit: int = 10000) -> list[Article]:
        """Articles stored (fetched) at or after ``since``, newest first, at most ``limit``."""
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT {_ARTICLE_COLUMNS} FROM articles a JOIN feeds f ON f.id = a.feed_id "
                "WHERE a.fetched_at >= ? ORDER BY a.fetched_at DESC, a.id DESC LIMIT ?",
                (to_db_time(since), limit),
            )
        return [_article(row) for row in rows]

    async def prune_text(self, before: datetime, batch: int = 5000) -> int:
        """Drop the stored text (body, summary) of articles fetched before ``before``.

        The rows themselves stay: their GUIDs and canonical URLs are what keeps an old story
        that reappears in a feed from alerting twice. Works in small transactions so the
        daemon's writers are never blocked for long. Returns the number of articles pruned.
        """
        cutoff = to_db_time(before)
        total = 0
        while True:
            async with self._write() as db:
                cur = await db.execute(
                    "UPDATE articles SET body = '', summary = '' WHERE id IN ("
                    "SELECT id FROM articles WHERE fetched_at < ? AND (body != '' OR summary != '') "
                    "LIMIT ?)",
                    (cutoff, batch),
                )
                n = cur.rowcount
            total += n
            if n < batch:
                return total
            await asyncio.sleep(0)

    # -- outbox

    async def claim_deliveries(
        self, channel: str, now: datetime, limit: int, lease: float
    ) -> list[Delivery]:
        """Atomically take due rows: pending and due, or in flight with an expired lease.

        Oldest ``next_attempt`` first. Claimed rows become ``in_flight`` with
        ``lease_until = now + lease``, one more attempt, and ``first_attempt`` set once.
        """
        if limit <= 0:
            return []
        at = to_db_time(now)
        lease_text = to_db_time(now + timedelta(seconds=lease))
        async with self._write() as db:
            rows = await db.execute_fetchall(
                # Each side picks its oldest `limit` rows through an index before anything is
                # joined, so a backlog of 100,000 due rows costs no more than 100.
                f"SELECT {_DELIVERY_COLUMNS}, a.payload, a.watchlist FROM ("
                "  SELECT * FROM (SELECT alert_id, channel, next_attempt FROM deliveries "
                "    WHERE channel = :channel AND state = 'pending' AND next_attempt <= :now "
                "    ORDER BY next_attempt LIMIT :limit) "
                "  UNION ALL "
                "  SELECT * FROM (SELECT alert_id, channel, next_attempt FROM deliveries "
                "    WHERE channel = :channel AND state = 'in_flight' AND lease_until <= :now "
                "    ORDER BY next_attempt LIMIT :limit) "
                "  ORDER BY next_attempt LIMIT :limit"
                ") due JOIN deliveries d ON d.alert_id = due.alert_id AND d.channel = due.channel "
                "JOIN alerts a ON a.id = d.alert_id "
                "ORDER BY d.next_attempt, d.created_at, d.alert_id",
                {"channel": channel, "now": at, "limit": limit},
            )
            claimed = [_delivery(row, with_payload=True) for row in rows]
            if claimed:
                await db.executemany(
                    "UPDATE deliveries SET state = 'in_flight', attempts = attempts + 1, "
                    "lease_until = ?, lease_owner = ?, first_attempt = COALESCE(first_attempt, ?), "
                    "last_attempt = ? WHERE alert_id = ? AND channel = ?",
                    [(lease_text, LEASE_OWNER, at, at, d.alert_id, d.channel) for d in claimed],
                )
        for delivery in claimed:
            delivery.state = "in_flight"
            delivery.attempts += 1
            delivery.lease_until = from_db_time(lease_text)
            delivery.first_attempt = delivery.first_attempt or from_db_time(at)
            delivery.last_attempt = from_db_time(at)
        return claimed

    async def recover_in_flight(self, now: datetime) -> int:
        """Take back, due ``now``, the unexpired leases of dead processes on this host.

        Called by the daemon at start, so rows a killed predecessor was sending are retried at
        once rather than after their lease. A lease is taken back only when its owner is surely
        gone: same host and either the same pid with another process token (the pid was reused
        by us) or a pid that no longer exists. Anything else waits for its lease to expire, so a
        second live process on the same database is never disturbed.
        """
        at = to_db_time(now)
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "SELECT alert_id, channel, lease_owner FROM deliveries "
                "WHERE state = 'in_flight' AND lease_until > ? AND lease_owner IS NOT NULL "
                "AND lease_owner != ?",
                (at, LEASE_OWNER),
            )
            dead = [(r["alert_id"], r["channel"]) for r in rows if _owner_is_dead(r["lease_owner"])]
            if dead:
                await db.executemany(
                    "UPDATE deliveries SET state = 'pending', next_attempt = ?, "
                    "lease_until = NULL, lease_owner = NULL "
                    "WHERE alert_id = ? AND channel = ? AND state = 'in_flight'",
                    [(at, alert_id, channel) for alert_id, channel in dead],
                )
        if dead:
            log.info("outbox recovered leases count=%d path=%s", len(dead), self.path)
        return len(dead)

    async def _transition(self, sql: str, params: tuple[Any, ...]) -> None:
        """Apply one state change to a row that is not delivered (a delivered row is final)."""
        async with self._write() as db:
            cursor = await db.execute(sql, params)
            if cursor.rowcount == 0:
                log.info(
                    "delivery transition skipped alert=%s channel=%s reason=delivered_or_missing",
                    params[-2],
                    params[-1],
                )

    async def mark_delivered(
        self, alert_id: str, channel: str, status: int | None, at: datetime
    ) -> None:
        """Final: the row is never claimed, retried or requeued again."""
        await self._transition(
            "UPDATE deliveries SET state = 'delivered', delivered_at = ?, last_status = ?, "
            "last_error = NULL, lease_until = NULL, lease_owner = NULL "
            "WHERE state != 'delivered' AND alert_id = ? AND channel = ?",
            (to_db_time(at), status, alert_id, channel),
        )

    async def mark_retry(
        self,
        alert_id: str,
        channel: str,
        next_attempt: datetime,
        status: int | None,
        error: str,
        at: datetime,
    ) -> None:
        """Back to pending, due at ``next_attempt``; ``at`` is when the attempt ended."""
        await self._transition(
            "UPDATE deliveries SET state = 'pending', next_attempt = ?, last_status = ?, "
            "last_error = ?, last_attempt = ?, lease_until = NULL, lease_owner = NULL "
            "WHERE state != 'delivered' AND alert_id = ? AND channel = ?",
            (to_db_time(next_attempt), status, error, to_db_time(at), alert_id, channel),
        )

    async def mark_failed(
        self, alert_id: str, channel: str, status: int | None, error: str, at: datetime
    ) -> None:
        """Permanently failed: kept and visible, replayable with ``requeue``."""
        await self._transition(
            "UPDATE deliveries SET state = 'failed', last_status = ?, last_error = ?, "
            "last_attempt = ?, lease_until = NULL, lease_owner = NULL "
            "WHERE state != 'delivered' AND alert_id = ? AND channel = ?",
            (status, error, to_db_time(at), alert_id, channel),
        )

    async def record_outcomes(self, outcomes: list[DeliveryOutcome]) -> list[bool]:
        """Apply many outcomes in order, in one transaction; per outcome, whether it applied.

        One ``UPDATE ... FROM json_each(...) RETURNING`` per run of distinct rows, so a batch of
        any size costs one statement (the outbox's group commit makes batches of concurrent
        sends). Same effect as ``mark_delivered``/``mark_retry``/``mark_failed`` one by one: a
        delivered row is final (later outcomes for it are skipped, returned as False).
        """
        if not outcomes:
            return []
        params = [_outcome_params(o) for o in outcomes]
        # A row named twice must see its outcomes in order: split into runs of distinct rows.
        runs: list[list[int]] = [[]]
        seen: set[tuple[str, str]] = set()
        for i, o in enumerate(outcomes):
            key = (o.alert_id, o.channel)
            if key in seen:
                runs.append([])
                seen = set()
            seen.add(key)
            runs[-1].append(i)
        applied = [False] * len(outcomes)
        async with self._write() as db:
            for run in runs:
                rows = await db.execute_fetchall(
                    _RECORD_OUTCOMES_SQL, (json.dumps([params[i] for i in run]),)
                )
                done = {(r[0], r[1]) for r in rows}
                for i in run:
                    applied[i] = (outcomes[i].alert_id, outcomes[i].channel) in done
        for o, ok in zip(outcomes, applied, strict=True):
            if not ok:
                log.info(
                    "delivery transition skipped alert=%s channel=%s reason=delivered_or_missing",
                    o.alert_id,
                    o.channel,
                )
        return applied

    async def release_deliveries(self, rows: list[Delivery]) -> int:
        """Undo claims that were never sent (a worker stopping with rows claimed ahead).

        Only rows still leased by this process under the very lease of that claim change. The
        claim's attempt is taken back; ``first_attempt`` and ``last_attempt`` go back to NULL when
        that claim was the row's first (both then hold the claim time); otherwise
        ``last_attempt`` keeps the claim time. ``next_attempt`` never changed, so the row is due
        as before.
        """
        params = [
            (r.alert_id, r.channel, LEASE_OWNER, to_db_time(r.lease_until))
            for r in rows
            if r.lease_until is not None
        ]
        if not params:
            return 0
        async with self._write() as db:
            cursor = await db.executemany(
                # SET expressions all see the row as it was before this UPDATE.
                "UPDATE deliveries SET state = 'pending', attempts = MAX(attempts - 1, 0), "
                "lease_until = NULL, lease_owner = NULL, "
                "first_attempt = CASE WHEN first_attempt = last_attempt THEN NULL "
                "  ELSE first_attempt END, "
                "last_attempt = CASE WHEN first_attempt = last_attempt THEN NULL "
                "  ELSE last_attempt END "
                "WHERE alert_id = ? AND channel = ? AND state = 'in_flight' "
                "AND lease_owner = ? AND lease_until = ?",
                params,
            )
            released = max(cursor.rowcount, 0)
        log.info("outbox released unsent claims count=%d path=%s", released, self.path)
        return released

    async def next_delivery_time(self, channels: list[str]) -> datetime | None:
        """Earliest next_attempt of pending rows or lease expiry of in-flight rows."""
        if not channels:
            return None
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT MIN(t) FROM ("
                "  SELECT MIN(next_attempt) AS t FROM deliveries "
                "  WHERE state = 'pending' AND channel IN (SELECT value FROM json_each(:ch)) "
                "  UNION ALL "
                "  SELECT MIN(lease_until) FROM deliveries "
                "  WHERE state = 'in_flight' AND channel IN (SELECT value FROM json_each(:ch))"
                ")",
                {"ch": _json_list(channels)},
            )
        return from_db_time(next(iter(rows))[0])

    async def ping(self) -> None:
        """A trivial query: raises StorageError when the database does not answer."""
        async with self._read() as db:
            await db.execute_fetchall("SELECT 1")

    async def outbox_summary(self) -> tuple[int, datetime | None]:
        """Undelivered rows (pending or in flight) and the creation time of the oldest."""
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries "
                "WHERE state IN ('pending', 'in_flight')"
            )
        count, oldest = next(iter(rows))
        return int(count), from_db_time(oldest)

    async def pending_count(self, channels: list[str] | None = None) -> int:
        """Rows neither delivered nor failed (pending or in flight)."""
        async with self._read() as db:
            if channels is None:
                rows = await db.execute_fetchall(
                    "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'in_flight')"
                )
            else:
                rows = await db.execute_fetchall(
                    "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'in_flight') "
                    "AND channel IN (SELECT value FROM json_each(?))",
                    (_json_list(channels),),
                )
        return int(next(iter(rows))[0])

    async def get_alert(self, alert_id: str) -> AlertRecord | None:
        """One alert with its deliveries, or None."""
        found = await self.list_alerts(limit=1, alert_id=alert_id)
        return found[0] if found else None

    async def list_alerts(
        self,
        since: datetime | None = None,
        failed_only: bool = False,
        limit: int = 1000,
        alert_id: str | None = None,
    ) -> list[AlertRecord]:
        """Alerts newest first with their deliveries (no payload on those: it is on the alert).

        ``failed_only``: alerts with at least one permanently failed channel.
        """
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT id, watchlist, article_id, created_at, payload FROM alerts a "
                    "WHERE (:since IS NULL OR a.created_at >= :since) "
                    "AND (:id IS NULL OR a.id = :id) "
                    "AND (NOT :failed OR EXISTS (SELECT 1 FROM deliveries d "
                    "     WHERE d.alert_id = a.id AND d.state = 'failed')) "
                    "ORDER BY a.created_at DESC, a.id LIMIT :limit",
                    {
                        "since": _opt_time(since),
                        "failed": failed_only,
                        "limit": limit,
                        "id": alert_id,
                    },
                )
            )
            deliveries = await db.execute_fetchall(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "
                "WHERE d.alert_id IN (SELECT value FROM json_each(?)) ORDER BY d.channel",
                (_json_list(row["id"] for row in rows),),
            )
        by_alert: dict[str, list[Delivery]] = {}
        for row in deliveries:
            by_alert.setdefault(row["alert_id"], []).append(_delivery(row))
        return [
            AlertRecord(
                id=row["id"],
                watchlist=row["watchlist"],
                article_id=row["article_id"],
                created_at=_req_time(row["created_at"]),
                payload=json.loads(row["payload"]),
                deliveries=by_alert.get(row["id"], []),
            )
            for row in rows
        ]

    async def requeue(
        self, alert_id: str | None = None, failed: bool = False, now: datetime | None = None
    ) -> int:
        """Make rows pending again, due ``now``; return how many changed.

        By ``alert_id``: its pending and failed rows (with ``failed``: only its failed rows).
        Without an id, ``failed=True``: every failed row. Delivered rows are never touched, nor
        in-flight ones (their lease decides). Attempts are kept but ``first_attempt`` is cleared,
        so the retry window starts again.
        """
        if alert_id is None and not failed:
            raise ValueError("requeue needs an alert id or failed=True")
        at = to_db_time(now or _now())
        where = "state = 'failed'" if failed else "state IN ('pending', 'failed')"
        params: list[Any] = [at]
        if alert_id is not None:
            where += " AND alert_id = ?"
            params.append(alert_id)
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt = ?, "
                f"first_attempt = NULL, lease_until = NULL, lease_owner = NULL WHERE {where}",
                params,
            )
            return cursor.rowcount
