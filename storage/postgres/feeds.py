"""Feeds on PostgreSQL: configured feeds, claims for polling (``SKIP LOCKED``), poll outcomes."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from storage.base import FeedSpec, FeedState, FeedUpdate, StorageError
from storage.postgres.connection import PgBase
from storage.postgres.values import j, t, text
from storage.rows import (
    FEED_COLUMNS,
    OPTIONAL_FEED_FIELDS,
    distinct_runs,
    feed_from_row,
    feed_order,
    utcnow,
)

_FIELD_TYPES = {
    "etag": "text",
    "last_modified": "text",
    "body_hash": "text",
    "url": "text",
    "title": "text",
    "disabled": "text",
    "retry_after": "timestamptz",
    "interval": "float8",
    "items_per_day": "float8",
    "ttl": "float8",
}
_DEAD_OWNERS = "SELECT id FROM daemons WHERE alive_until <= %(now)s OR stopped_at IS NOT NULL"


ANALYZE_AFTER = 500  # feeds added or changed by one sync before the table's statistics are renewed


def id_ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive runs of consecutive values: 1,2,3,7 -> (1,3),(7,7)."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _feed(row: dict[str, Any]) -> FeedState:
    return feed_from_row(row, t, j)


def _update_statement(
    updates: list[tuple[int, FeedUpdate]], polled_by: str
) -> tuple[str, dict[str, Any]]:
    """One ``UPDATE ... FROM unnest(...)`` for a run of distinct feeds.

    Optional fields that some update sets come with a ``set_<field>`` flag per row, so rows
    that leave the field alone keep the stored value. It changes nothing unless every id names
    a feed, so a bad batch is all-or-nothing in one statement.
    """
    present = [
        name
        for name in OPTIONAL_FEED_FIELDS
        if any(getattr(u, name) is not ... for _, u in updates)
    ]
    params: dict[str, Any] = {
        "id": [feed_id for feed_id, _ in updates],
        "last_poll": [u.last_poll for _, u in updates],
        "next_poll": [u.next_poll for _, u in updates],
        "http_status": [u.http_status for _, u in updates],
        "error": [text(u.error) for _, u in updates],
        "ok": [bool(u.ok) for _, u in updates],
        "by": polled_by,
        "n": len(updates),
    }
    columns = ["id", "last_poll", "next_poll", "http_status", "error", "ok"]
    types = ["bigint", "timestamptz", "timestamptz", "int", "text", "bool"]
    sets = [
        "last_poll = u.last_poll",
        "next_poll = u.next_poll",
        "http_status = u.http_status",
        "last_error = u.error",
        "error_count = CASE WHEN u.ok THEN 0 ELSE f.error_count + 1 END",
        "last_success = CASE WHEN u.ok THEN u.last_poll ELSE f.last_success END",
        "lease_owner = NULL",
        "lease_until = NULL",
        "last_polled_by = %(by)s",
    ]
    for name in present:
        values = [getattr(u, name) for _, u in updates]
        params[f"set_{name}"] = [v is not ... for v in values]
        params[name] = [
            None if v is ... else (text(v) if isinstance(v, str) else v) for v in values
        ]
        columns += [f"set_{name}", name]
        types += ["bool", _FIELD_TYPES[name]]
        sets.append(f"{name} = CASE WHEN u.set_{name} THEN u.{name} ELSE f.{name} END")
    arrays = ", ".join(f"%({c})s::{ty}[]" for c, ty in zip(columns, types, strict=True))
    # The same statement counts the polls in their hour and keeps the failed ones in
    # feed_events, trimmed to about the newest 50 per feed: still one round trip per batch.
    sql = (
        f"WITH upd AS (UPDATE feeds f SET {', '.join(sets)} "
        f"FROM unnest({arrays}) AS u({', '.join(columns)}) "
        "WHERE f.id = u.id AND (SELECT count(*) FROM feeds WHERE id = ANY(%(id)s::bigint[])) = %(n)s "
        "RETURNING f.id, u.ok, u.last_poll, u.http_status, u.error), "
        "ev AS (INSERT INTO feed_events (feed_id, at, http_status, error) "
        "  SELECT id, last_poll, http_status, error FROM upd WHERE NOT ok RETURNING feed_id), "
        "trimmed AS (DELETE FROM feed_events e WHERE e.feed_id IN (SELECT feed_id FROM ev) "
        "  AND e.id <= (SELECT x.id FROM feed_events x WHERE x.feed_id = e.feed_id "
        "               ORDER BY x.id DESC OFFSET 49 LIMIT 1) RETURNING 1), "
        "hours AS (INSERT INTO poll_hours (hour, polls, errors) "
        "  SELECT date_trunc('hour', last_poll), count(*), count(*) FILTER (WHERE NOT ok) "
        "  FROM upd GROUP BY 1 ON CONFLICT (hour) DO UPDATE SET "
        "  polls = poll_hours.polls + excluded.polls, errors = poll_hours.errors + excluded.errors "
        "  RETURNING 1) "
        "SELECT id FROM upd"
    )
    return sql, params


class PgFeeds(PgBase):
    # The last key list sent, with the SQL condition and parameter for it (see ``_feed_filter``).
    _keys_sent: tuple[list[str], str, str] | None = None
    # Feed ids by key, learned from ``sync_feeds`` (a feed's id never changes), and whether the
    # server has multiranges (PostgreSQL 14+).
    _feed_ids: dict[str, int] | None = None
    _multirange: bool = False

    def _feed_filter(self, keys: list[str]) -> tuple[str, str]:
        """A condition on ``f`` selecting these feeds, and its one text parameter (``%(keys)s``).

        The dispatcher claims several times a second with every configured key. When every key
        was synced by this process, the condition is on ids as one ``int8multirange`` (feeds
        synced together have consecutive ids: 10,000 feeds are usually one range): a per-row
        check in about a microsecond, which also lets the planner walk ``next_poll`` in order.
        Otherwise the keys go as one JSON text (psycopg adapts a list to ``text[]`` element by
        element in Python, about 80 ms for 10,000 keys on the event loop); hashing 10,000 keys
        costs the server 6-10 ms per claim against 1-3 ms for the ranges. Either is kept while
        the keys stay the same (a list compare: the same string objects each round).
        """
        sent = self._keys_sent
        if sent is not None and sent[0] == keys:
            return sent[1], sent[2]
        known = self._feed_ids or {}
        if self._multirange and all(k in known for k in keys):
            cond = "f.id <@ %(keys)s::int8multirange"
            param = "{" + ",".join(f"[{a},{b}]" for a, b in id_ranges(known[k] for k in keys)) + "}"
        else:
            cond = "f.key IN (SELECT json_array_elements_text(%(keys)s::json))"
            param = json.dumps([text(k) for k in keys])
        self._keys_sent = (list(keys), cond, param)
        return cond, param

    async def sync_feeds(self, feeds: list[FeedSpec]) -> dict[str, FeedState]:
        if not feeds:
            return {}
        specs = sorted({spec.key: spec for spec in feeds}.values(), key=lambda s: s.key)
        params = {
            "keys": [s.key for s in specs],
            "names": [text(s.name) for s in specs],
            "hashes": [s.fingerprint for s in specs],
            "now": utcnow(),
        }
        async with self._conn() as conn:
            changed = await self._run(
                conn,
                "INSERT INTO feeds (key, url, name, config_hash, created_at) "
                "SELECT k, k, n, h, %(now)s FROM unnest(%(keys)s::text[], %(names)s::text[], "
                "%(hashes)s::text[]) AS s(k, n, h) ORDER BY k "
                "ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
                "config_hash = COALESCE(excluded.config_hash, feeds.config_hash), "
                # An edited config entry re-enables a disabled feed and makes it due now.
                "disabled = CASE WHEN excluded.config_hash IS NOT NULL "
                "AND feeds.config_hash IS DISTINCT FROM excluded.config_hash THEN NULL "
                "ELSE feeds.disabled END, "
                "next_poll = CASE WHEN feeds.disabled IS NOT NULL AND excluded.config_hash IS NOT NULL "
                "AND feeds.config_hash IS DISTINCT FROM excluded.config_hash THEN NULL "
                "ELSE feeds.next_poll END "
                "WHERE feeds.name IS DISTINCT FROM excluded.name "
                "OR (excluded.config_hash IS NOT NULL "
                "AND feeds.config_hash IS DISTINCT FROM excluded.config_hash)",
                params,
            )
            if changed >= ANALYZE_AFTER:
                # Before autovacuum's first look at a new table the planner takes it for empty
                # and joins 10,000 claimed keys by nested loop: 20 s per claim instead of 10 ms.
                await self._run(conn, "ANALYZE feeds", None)
            rows = await self._rows(
                conn,
                f"SELECT {FEED_COLUMNS} FROM feeds f WHERE f.key = ANY(%(keys)s::text[])",
                params,
            )
            self._multirange = conn.info.server_version >= 140000
        ids = self._feed_ids if self._feed_ids is not None else {}
        ids.update((row["key"], row["id"]) for row in rows)
        self._feed_ids = ids
        self._keys_sent = None
        return {row["key"]: _feed(row) for row in rows}

    async def get_feed(self, key: str) -> FeedState | None:
        rows = await self._fetch(f"SELECT {FEED_COLUMNS} FROM feeds f WHERE f.key = %s", (key,))
        return _feed(rows[0]) if rows else None

    async def list_feeds(self, keys: list[str] | None = None) -> list[FeedState]:
        if keys is None:
            rows = await self._fetch(f"SELECT {FEED_COLUMNS} FROM feeds f ORDER BY f.id", None)
        else:
            cond, param = self._feed_filter(keys)
            rows = await self._fetch(
                f"SELECT {FEED_COLUMNS} FROM feeds f WHERE {cond} ORDER BY f.id", {"keys": param}
            )
        return [_feed(row) for row in rows]

    async def claim_feeds(
        self,
        now: datetime,
        keys: list[str],
        limit: int,
        lease_seconds: float,
        owner: str | None = None,
        exclude: Collection[int] = (),
    ) -> list[FeedState]:
        """One statement: due rows locked with ``SKIP LOCKED`` (a concurrent claim passes over
        them), leased and returned. ``exclude`` (this daemon's polls in flight) keeps a claim
        from leasing them again: re-leasing 100 in-flight rows per claim made each claim an
        update of 100 rows."""
        if not keys or limit <= 0:
            return []
        cond, param = self._feed_filter(keys)
        params = {
            "keys": param,
            "now": now,
            "until": now + timedelta(seconds=lease_seconds),
            "owner": owner or self.identity,
            "limit": limit,
            "exclude": sorted(exclude),
        }
        rows = await self._fetch(
            "WITH due AS (SELECT f.id FROM feeds f "
            f"  WHERE {cond} "
            "  AND NOT (f.id = ANY(%(exclude)s::bigint[])) "
            "  AND f.disabled IS NULL "
            # the index feeds_due (migration 5): due feeds are a range, walked in poll order
            "  AND coalesce(f.next_poll, '-infinity'::timestamptz) <= %(now)s "
            "  AND (f.retry_after IS NULL OR f.retry_after <= %(now)s) "
            "  AND (f.lease_until IS NULL OR f.lease_until <= %(now)s "
            "       OR f.lease_owner = %(owner)s "
            f"       OR f.lease_owner IN ({_DEAD_OWNERS})) "
            "  ORDER BY coalesce(f.next_poll, '-infinity'::timestamptz), f.id LIMIT %(limit)s "
            "  FOR UPDATE SKIP LOCKED) "
            "UPDATE feeds f SET lease_owner = %(owner)s, lease_until = %(until)s "
            f"FROM due WHERE f.id = due.id RETURNING {FEED_COLUMNS}",
            params,
        )
        return sorted((_feed(row) for row in rows), key=feed_order)

    async def update_feed(self, feed_id: int, update: FeedUpdate) -> None:
        sql, params = _update_statement([(feed_id, update)], self.identity)
        if not await self._fetch(sql, params):
            raise StorageError(f"no feed with id {feed_id}")

    async def update_feeds(self, updates: list[tuple[int, FeedUpdate]]) -> None:
        """One statement per run of distinct feeds (usually one); all or nothing."""
        if not updates:
            return
        runs = distinct_runs([feed_id for feed_id, _ in updates])
        statements = [_update_statement([updates[i] for i in run], self.identity) for run in runs]
        if len(statements) == 1:
            changed = len(await self._fetch(*statements[0]))
            if changed != len(updates):
                raise StorageError(
                    f"{len(updates) - changed} of {len(updates)} feed updates name no feed"
                )
            return
        async with self._tx() as conn:
            changed = 0
            for sql, params in statements:
                changed += len(await self._rows(conn, sql, params))
            if changed != len(updates):
                raise StorageError(
                    f"{len(updates) - changed} of {len(updates)} feed updates name no feed"
                )

    async def set_feed_disabled(self, key: str, reason: str | None) -> None:
        async with self._conn() as conn:
            if reason is not None:
                n = await self._run(
                    conn, "UPDATE feeds SET disabled = %s WHERE key = %s", (text(reason), key)
                )
            else:
                n = await self._run(
                    conn,
                    "UPDATE feeds SET disabled = NULL, "
                    "next_poll = CASE WHEN disabled IS NULL THEN next_poll END, "
                    "retry_after = CASE WHEN disabled IS NULL THEN retry_after END "
                    "WHERE key = %s",
                    (key,),
                )
        if n == 0:
            raise StorageError(f"no feed with key {key}")
