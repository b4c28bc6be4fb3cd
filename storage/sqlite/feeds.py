"""Feeds on SQLite: configured feeds, claims for polling, poll outcomes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from storage.base import FeedSpec, FeedState, FeedUpdate, StorageError
from storage.rows import (
    FEED_COLUMNS,
    TIME_FEED_FIELDS,
    feed_from_row,
    feed_order,
    feed_update_fields,
    utcnow,
)
from storage.sqlite.connection import SQLiteBase
from storage.sqlite.convert import from_db_time, from_json, json_list, to_db_time

# A lease is free when there is none, it ran out, or its daemon stopped or lapsed.
# Free: never leased, expired, held by a daemon that stopped or lapsed, or held by the claimant
# itself (it knows which of its polls are in flight; one whose outcome could not be written,
# storage failing, is due again without waiting for its own lease to run out).
LEASE_FREE = (
    "(f.lease_until IS NULL OR f.lease_until <= :now OR f.lease_owner = :owner "
    "OR f.lease_owner IN "
    "(SELECT id FROM daemons WHERE alive_until <= :now OR stopped_at IS NOT NULL))"
)


_RETURNED_COLUMNS = FEED_COLUMNS.replace("f.", "")  # RETURNING knows no table alias

# The claimable feeds due by one condition on next_poll (never polled: NULL; or a time), in
# poll order. Two branches, each a walk of the feeds_next_poll index (next_poll, id) that stops
# at :limit, instead of one OR that made SQLite check every configured feed and sort them all.
_DUE = (
    "SELECT f.id, f.next_poll FROM feeds f "
    "WHERE {when} AND +f.id IN temp.claimable AND f.disabled IS NULL "
    "AND f.id NOT IN (SELECT value FROM json_each(:exclude)) "
    "AND (f.retry_after IS NULL OR f.retry_after <= :now) "
    f"AND {LEASE_FREE} "
    "ORDER BY f.next_poll, f.id LIMIT :limit"
)


def _feed(row: sqlite3.Row) -> FeedState:
    return feed_from_row(row, from_db_time, from_json)


async def _feeds(rows: Iterable[sqlite3.Row]) -> list[FeedState]:
    """Rows to FeedStates, yielding to the event loop every 500 (10,000 rows take ~0.1 s)."""
    out: list[FeedState] = []
    for i, row in enumerate(rows):
        if i and i % 500 == 0:
            await asyncio.sleep(0)
        out.append(_feed(row))
    return out


def feed_update_sql(feed_id: int, update: FeedUpdate, polled_by: str) -> tuple[str, list[Any]]:
    """The UPDATE statement and parameters for one poll outcome (``...`` fields left alone)."""
    assignments = [
        "last_poll = ?",
        "next_poll = ?",
        "http_status = ?",
        "last_error = ?",
        "error_count = CASE WHEN ? THEN 0 ELSE error_count + 1 END",
        "last_success = CASE WHEN ? THEN ? ELSE last_success END",
        "lease_owner = NULL",
        "lease_until = NULL",
        "last_polled_by = ?",
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
        polled_by,
    ]
    for name, value in feed_update_fields(update).items():
        if name in TIME_FEED_FIELDS and value is not None:
            value = to_db_time(value)
        assignments.append(f"{name} = ?")
        params.append(value)
    params.append(feed_id)
    return f"UPDATE feeds SET {', '.join(assignments)} WHERE id = ?", params


def _hour(at: datetime) -> str:
    return to_db_time(at.replace(minute=0, second=0, microsecond=0))


async def _record_polls(db: Any, updates: list[tuple[int, FeedUpdate]]) -> None:
    """Count the polls in their hours and keep the failed ones in ``feed_events`` (the same
    transaction as the outcomes; a trigger keeps the newest 50 per feed)."""
    hours: dict[str, list[int]] = {}
    for _, u in updates:
        counts = hours.setdefault(_hour(u.last_poll), [0, 0])
        counts[0] += 1
        counts[1] += not u.ok
    await db.executemany(
        "INSERT INTO poll_hours (hour, polls, errors) VALUES (?, ?, ?) ON CONFLICT (hour) "
        "DO UPDATE SET polls = polls + excluded.polls, errors = errors + excluded.errors",
        [(hour, n, e) for hour, (n, e) in hours.items()],
    )
    failed = [
        (feed_id, to_db_time(u.last_poll), u.http_status, u.error)
        for feed_id, u in updates
        if not u.ok
    ]
    if failed:
        await db.executemany(
            "INSERT INTO feed_events (feed_id, at, http_status, error) VALUES (?, ?, ?, ?)",
            failed,
        )


class SQLiteFeeds(SQLiteBase):
    _claimable_for: tuple[Any, list[str]] | None = None  # (connection, keys) temp.claimable holds

    async def sync_feeds(self, feeds: list[FeedSpec]) -> dict[str, FeedState]:
        """Insert new feeds (due now: next_poll NULL), refresh configured names, return by key."""
        if not feeds:
            return {}
        self._claimable_for = None  # new rows: the claimable ids are built again
        now = to_db_time(utcnow())
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
                f"SELECT {FEED_COLUMNS} FROM feeds f "
                "WHERE f.key IN (SELECT value FROM json_each(?))",
                (json_list(spec.key for spec in feeds),),
            )
        return {row["key"]: _feed(row) for row in rows}

    async def get_feed(self, key: str) -> FeedState | None:
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {FEED_COLUMNS} FROM feeds f WHERE f.key = ?", (key,)
                )
            )
        return _feed(rows[0]) if rows else None

    async def list_feeds(self, keys: list[str] | None = None) -> list[FeedState]:
        """All feeds (``keys`` None) or the given ones, in creation order."""
        async with self._read() as db:
            if keys is None:
                rows = await db.execute_fetchall(
                    f"SELECT {FEED_COLUMNS} FROM feeds f ORDER BY f.id"
                )
            else:
                rows = await db.execute_fetchall(
                    f"SELECT {FEED_COLUMNS} FROM feeds f "
                    "WHERE f.key IN (SELECT value FROM json_each(?)) ORDER BY f.id",
                    (json_list(keys),),
                )
        return await _feeds(rows)

    async def claim_feeds(
        self,
        now: datetime,
        keys: list[str],
        limit: int,
        lease_seconds: float,
        owner: str | None = None,
        exclude: Collection[int] = (),
    ) -> list[FeedState]:
        """Due feeds leased to ``owner`` in one ``BEGIN IMMEDIATE`` transaction (one statement)."""
        if not keys or limit <= 0:
            return []
        params = {
            "exclude": json.dumps(sorted(exclude)),
            "now": to_db_time(now),
            "until": to_db_time(now + timedelta(seconds=lease_seconds)),
            "owner": owner or self.identity,
            "limit": limit,
        }
        async with self._write() as db:
            fresh = await self._claimable(db, keys)
            rows = await db.execute_fetchall(
                "UPDATE feeds SET lease_owner = :owner, lease_until = :until WHERE id IN ("
                f"  SELECT id FROM (SELECT * FROM ({_DUE.format(when='f.next_poll IS NULL')}) "
                f"  UNION ALL SELECT * FROM ({_DUE.format(when='f.next_poll <= :now')})) "
                "  ORDER BY next_poll, id LIMIT :limit) "
                f"RETURNING {_RETURNED_COLUMNS}",
                params,
            )
        if fresh is not None:
            self._claimable_for = fresh  # committed: later claims with these keys reuse it
        return sorted((_feed(row) for row in rows), key=feed_order)

    async def _claimable(self, db: Any, keys: list[str]) -> tuple[Any, list[str]] | None:
        """The ids of ``keys`` in a temp table of this connection, rebuilt when they change.

        The dispatcher claims after every poll with every configured key. Matching 10,000
        keys through ``json_each`` cost ~14 ms per claim (its JSON parsed and hashed each
        time, in the write transaction): at a steady 80 polls/s the connection did little else.
        The ids stay valid until the keys change (a list compare: the same string objects
        each round), the connection is replaced, or ``sync_feeds`` adds rows. Returns what
        to remember once the transaction commits (None: nothing rebuilt).
        """
        cached = self._claimable_for
        if cached is not None and cached[0] is db and cached[1] == keys:
            return None
        self._claimable_for = None
        await db.execute("CREATE TEMP TABLE IF NOT EXISTS claimable (id INTEGER PRIMARY KEY)")
        await db.execute("DELETE FROM temp.claimable")
        await db.execute(
            "INSERT INTO temp.claimable (id) "
            "SELECT id FROM feeds WHERE key IN (SELECT value FROM json_each(?))",
            (json_list(keys),),
        )
        return db, list(keys)

    async def update_feed(self, feed_id: int, update: FeedUpdate) -> None:
        """Apply one poll's outcome; ``...`` fields keep their stored value."""
        sql, params = feed_update_sql(feed_id, update, self.identity)
        async with self._write() as db:
            cursor = await db.execute(sql, params)
            if cursor.rowcount == 0:
                raise StorageError(f"no feed with id {feed_id}")
            await _record_polls(db, [(feed_id, update)])

    async def update_feeds(self, updates: list[tuple[int, FeedUpdate]]) -> None:
        """Apply many polls' outcomes in one transaction (10,000 feeds: one commit per batch).

        Updates that set the same fields share one ``executemany``. All or nothing: an unknown
        feed id rolls the whole batch back and raises ``StorageError``.
        """
        if not updates:
            return
        groups: dict[str, list[list[Any]]] = {}
        for feed_id, update in updates:
            sql, params = feed_update_sql(feed_id, update, self.identity)
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
            await _record_polls(db, updates)

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
