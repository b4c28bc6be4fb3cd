"""The outbox on SQLite: claiming deliveries, recording outcomes, listing and requeueing alerts."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from storage.base import AlertRecord, Delivery, DeliveryOutcome
from storage.rows import (
    DELIVERY_COLUMNS,
    check_outcome,
    delivery_from_row,
    delivery_order,
    distinct_runs,
    utcnow,
)
from storage.sqlite.connection import SQLiteBase
from storage.sqlite.convert import from_db_time, from_json, json_list, opt_time, to_db_time

log = logging.getLogger("storage.sqlite")

_DEAD_OWNERS = "SELECT id FROM daemons WHERE alive_until <= :now OR stopped_at IS NOT NULL"

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
    """One outcome as a JSON array for ``_RECORD_OUTCOMES_SQL``."""
    return [
        o.alert_id,
        o.channel,
        o.state,
        to_db_time(o.at),
        o.status,
        None if o.state == "delivered" else o.error,
        opt_time(o.next_attempt) if o.state == "pending" else None,
    ]


def _skipped(alert_id: str, channel: str) -> None:
    log.info(
        "delivery transition skipped alert=%s channel=%s reason=delivered_or_missing",
        alert_id,
        channel,
    )


class SQLiteOutbox(SQLiteBase):
    async def claim_deliveries(
        self, channel: str, now: datetime, limit: int, lease: float, owner: str | None = None
    ) -> list[Delivery]:
        """Atomically take due rows: pending and due, or in flight with a lease that is over.

        Oldest ``next_attempt`` first. Claimed rows become ``in_flight`` with
        ``lease_until = now + lease``, one more attempt, and ``first_attempt`` set once.
        """
        if limit <= 0:
            return []
        at = to_db_time(now)
        lease_text = to_db_time(now + timedelta(seconds=lease))
        holder = owner or self.identity
        async with self._write() as db:
            rows = await db.execute_fetchall(
                # Each side picks its oldest `limit` rows through an index before anything is
                # joined, so a backlog of 100,000 due rows costs no more than 100.
                f"SELECT {DELIVERY_COLUMNS}, a.payload, a.watchlist FROM ("
                "  SELECT * FROM (SELECT alert_id, channel, next_attempt FROM deliveries "
                "    WHERE channel = :channel AND state = 'pending' AND next_attempt <= :now "
                "    ORDER BY next_attempt LIMIT :limit) "
                "  UNION ALL "
                "  SELECT * FROM (SELECT alert_id, channel, next_attempt FROM deliveries "
                "    WHERE channel = :channel AND state = 'in_flight' "
                f"    AND (lease_until <= :now OR lease_owner IN ({_DEAD_OWNERS})) "
                "    ORDER BY next_attempt LIMIT :limit) "
                "  ORDER BY next_attempt LIMIT :limit"
                ") due JOIN deliveries d ON d.alert_id = due.alert_id AND d.channel = due.channel "
                "JOIN alerts a ON a.id = d.alert_id "
                "ORDER BY d.next_attempt, d.created_at, d.alert_id",
                {"channel": channel, "now": at, "limit": limit},
            )
            claimed = [delivery_from_row(row, from_db_time, from_json, True) for row in rows]
            if claimed:
                await db.executemany(
                    "UPDATE deliveries SET state = 'in_flight', attempts = attempts + 1, "
                    "lease_until = ?, lease_owner = ?, first_attempt = COALESCE(first_attempt, ?), "
                    "last_attempt = ? WHERE alert_id = ? AND channel = ?",
                    [(lease_text, holder, at, at, d.alert_id, d.channel) for d in claimed],
                )
        for delivery in claimed:
            delivery.state = "in_flight"
            delivery.attempts += 1
            delivery.lease_until = from_db_time(lease_text)
            delivery.lease_owner = holder
            delivery.first_attempt = delivery.first_attempt or from_db_time(at)
            delivery.last_attempt = from_db_time(at)
        return sorted(claimed, key=delivery_order)

    async def _transition(self, sql: str, params: tuple[Any, ...]) -> None:
        """Apply one state change to a row that is not delivered (a delivered row is final)."""
        async with self._write() as db:
            cursor = await db.execute(sql, params)
            if cursor.rowcount == 0:
                _skipped(params[-2], params[-1])

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
        for o in outcomes:
            check_outcome(o)
        params = [_outcome_params(o) for o in outcomes]
        applied = [False] * len(outcomes)
        async with self._write() as db:
            for run in distinct_runs([(o.alert_id, o.channel) for o in outcomes]):
                rows = await db.execute_fetchall(
                    _RECORD_OUTCOMES_SQL, (json.dumps([params[i] for i in run]),)
                )
                done = {(r[0], r[1]) for r in rows}
                for i in run:
                    applied[i] = (outcomes[i].alert_id, outcomes[i].channel) in done
        for o, ok in zip(outcomes, applied, strict=True):
            if not ok:
                _skipped(o.alert_id, o.channel)
        return applied

    async def release_deliveries(self, rows: list[Delivery]) -> int:
        """Undo claims that were never sent (a worker stopping with rows claimed ahead).

        Only rows still leased under the very lease of that claim (owner and expiry) change.
        The claim's attempt is taken back; ``first_attempt`` and ``last_attempt`` go back to
        NULL when that claim was the row's first (both then hold the claim time); otherwise
        ``last_attempt`` keeps the claim time. ``next_attempt`` never changed, so the row is due
        as before.
        """
        params = [
            (r.alert_id, r.channel, r.lease_owner or self.identity, to_db_time(r.lease_until))
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
                {"ch": json_list(channels)},
            )
        return from_db_time(next(iter(rows))[0])

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
                    (json_list(channels),),
                )
        return int(next(iter(rows))[0])

    async def outbox_summary(self) -> tuple[int, datetime | None]:
        """Undelivered rows (pending or in flight) and the creation time of the oldest."""
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries "
                "WHERE state IN ('pending', 'in_flight')"
            )
        count, oldest = next(iter(rows))
        return int(count), from_db_time(oldest)

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
        *,
        watchlist: str | None = None,
        article_id: int | None = None,
        offset: int = 0,
    ) -> list[AlertRecord]:
        """Story alerts newest first, each with its deliveries and its copies (``also_reported``
        alerts attached to it, oldest first). By ``alert_id`` or ``article_id``: those alerts,
        whatever their kind.

        ``failed_only``: a channel of the alert or of one of its copies failed for good.
        """
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT id, watchlist, article_id, created_at, payload, kind, story_alert_id "
                    "FROM alerts a "
                    "WHERE (:since IS NULL OR a.created_at >= :since) "
                    "AND (CASE WHEN :id IS NOT NULL THEN a.id = :id "
                    "     WHEN :art IS NOT NULL THEN a.article_id = :art "
                    "     ELSE a.kind = 'match' END) "
                    "AND (:wl IS NULL OR a.watchlist = :wl) "
                    "AND (NOT :failed OR EXISTS (SELECT 1 FROM deliveries d "
                    "     WHERE d.state = 'failed' AND (d.alert_id = a.id OR d.alert_id IN "
                    "     (SELECT c.id FROM alerts c WHERE c.story_alert_id = a.id)))) "
                    "ORDER BY a.created_at DESC, a.id LIMIT :limit OFFSET :offset",
                    {
                        "since": opt_time(since),
                        "failed": failed_only,
                        "limit": limit,
                        "offset": max(0, offset),
                        "id": alert_id,
                        "wl": watchlist,
                        "art": article_id,
                    },
                )
            )
            ids = [row["id"] for row in rows]
            copies = list(
                await db.execute_fetchall(
                    "SELECT id, watchlist, article_id, created_at, payload, kind, story_alert_id "
                    "FROM alerts WHERE story_alert_id IN (SELECT value FROM json_each(?)) "
                    "ORDER BY created_at, id",
                    (json_list(ids),),
                )
            )
            deliveries = await db.execute_fetchall(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d "
                "WHERE d.alert_id IN (SELECT value FROM json_each(?)) ORDER BY d.channel",
                (json_list(ids + [row["id"] for row in copies]),),
            )
        by_alert: dict[str, list[Delivery]] = {}
        for row in deliveries:
            by_alert.setdefault(row["alert_id"], []).append(
                delivery_from_row(row, from_db_time, from_json)
            )

        def record(row: Any) -> AlertRecord:
            return AlertRecord(
                id=row["id"],
                watchlist=row["watchlist"],
                article_id=row["article_id"],
                created_at=from_db_time(row["created_at"]) or utcnow(),
                payload=json.loads(row["payload"]),
                deliveries=by_alert.get(row["id"], []),
                kind=row["kind"],
                story_alert_id=row["story_alert_id"],
            )

        out = [record(row) for row in rows]
        by_id = {a.id: a for a in out}
        for row in copies:
            if row["story_alert_id"] in by_id:
                by_id[row["story_alert_id"]].copies.append(record(row))
        return out

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
        at = to_db_time(now or utcnow())
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
