"""Feeds on PostgreSQL: configured feeds, claims for polling (``SKIP LOCKED``), poll outcomes."""

from __future__ import annotations

import json
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
    sql = (
        f"UPDATE feeds f SET {', '.join(sets)} "
        f"FROM unnest({arrays}) AS u({', '.join(columns)}) "
        "WHERE f.id = u.id AND (SELECT count(*) FROM feeds WHERE id = ANY(%(id)s::bigint[])) = %(n)s "
        "RETURNING f.id"
    )
    return sql, params


class PgFeeds(PgBase):
    # The last key list sent and its JSON text (see ``_keys_param``).
    _keys_sent: tuple[list[str], str] | None = None

    def _keys_param(self, keys: list[str]) -> str:
        """Feed keys as one JSON text, for ``IN (SELECT json_array_elements_text(...))``.

        The dispatcher claims several times a second with every configured key. psycopg adapts
        a list to ``text[]`` element by element in Python (about 80 ms for 10,000 keys, on the
        event loop each time); one string is a single ``json.dumps`` (2 ms), kept while the keys
        stay the same (a list compare: the same string objects each round).
        """
        sent = self._keys_sent
        if sent is None or sent[0] != keys:
            sent = self._keys_sent = (list(keys), json.dumps([text(k) for k in keys]))
        return sent[1]

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
            await self._run(
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
            rows = await self._rows(
                conn,
                f"SELECT {FEED_COLUMNS} FROM feeds f WHERE f.key = ANY(%(keys)s::text[])",
                params,
            )
        return {row["key"]: _feed(row) for row in rows}

    async def get_feed(self, key: str) -> FeedState | None:
        rows = await self._fetch(f"SELECT {FEED_COLUMNS} FROM feeds f WHERE f.key = %s", (key,))
        return _feed(rows[0]) if rows else None

    async def list_feeds(self, keys: list[str] | None = None) -> list[FeedState]:
        if keys is None:
            rows = await self._fetch(f"SELECT {FEED_COLUMNS} FROM feeds f ORDER BY f.id", None)
        else:
            rows = await self._fetch(
                f"SELECT {FEED_COLUMNS} FROM feeds f "
                "WHERE f.key IN (SELECT json_array_elements_text(%s::json)) ORDER BY f.id",
                (self._keys_param(keys),),
            )
        return [_feed(row) for row in rows]

    async def claim_feeds(
        self,
        now: datetime,
        keys: list[str],
        limit: int,
        lease_seconds: float,
        owner: str | None = None,
    ) -> list[FeedState]:
        """One statement: due rows locked with ``SKIP LOCKED`` (a concurrent claim passes over
        them), leased and returned."""
        if not keys or limit <= 0:
            return []
        params = {
            "keys": self._keys_param(keys),
            "now": now,
            "until": now + timedelta(seconds=lease_seconds),
            "owner": owner or self.identity,
            "limit": limit,
        }
        rows = await self._fetch(
            "WITH due AS (SELECT f.id FROM feeds f "
            "  WHERE f.key IN (SELECT json_array_elements_text(%(keys)s::json)) "
            "  AND f.disabled IS NULL "
            "  AND (f.next_poll IS NULL OR f.next_poll <= %(now)s) "
            "  AND (f.retry_after IS NULL OR f.retry_after <= %(now)s) "
            "  AND (f.lease_until IS NULL OR f.lease_until <= %(now)s "
            "       OR f.lease_owner = %(owner)s "
            f"       OR f.lease_owner IN ({_DEAD_OWNERS})) "
            "  ORDER BY f.next_poll NULLS FIRST, f.id LIMIT %(limit)s "
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
