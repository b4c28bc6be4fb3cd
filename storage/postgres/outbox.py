"""The outbox on PostgreSQL: claims with ``SKIP LOCKED``, outcomes by ``UPDATE ... FROM unnest``."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from storage.base import AlertRecord, Delivery, DeliveryOutcome
from storage.postgres.connection import PgBase
from storage.postgres.values import j, t, text
from storage.rows import (
    DELIVERY_COLUMNS,
    check_outcome,
    delivery_from_row,
    delivery_order,
    distinct_runs,
    utcnow,
)

log = logging.getLogger("storage.postgres")

_DEAD_OWNERS = "SELECT id FROM daemons WHERE alive_until <= %(now)s OR stopped_at IS NOT NULL"

# Each side picks its oldest rows through an index and locks them, passing over rows another
# claim holds (SKIP LOCKED), so concurrent daemons split the work instead of queueing on it.
_CLAIM = f"""
WITH pending AS (
    SELECT alert_id, channel, next_attempt FROM deliveries
    WHERE channel = %(channel)s AND state = 'pending' AND next_attempt <= %(now)s
    ORDER BY next_attempt LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT alert_id, channel, next_attempt FROM deliveries
    WHERE channel = %(channel)s AND state = 'in_flight'
      AND (lease_until <= %(now)s OR lease_owner IN ({_DEAD_OWNERS}))
    ORDER BY next_attempt LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), due AS (
    SELECT * FROM pending UNION ALL SELECT * FROM expired
    ORDER BY next_attempt LIMIT %(limit)s
)
UPDATE deliveries d SET state = 'in_flight', attempts = d.attempts + 1,
    lease_until = %(until)s, lease_owner = %(owner)s,
    first_attempt = COALESCE(d.first_attempt, %(now)s), last_attempt = %(now)s
FROM due, alerts a
WHERE d.alert_id = due.alert_id AND d.channel = due.channel AND a.id = d.alert_id
RETURNING {DELIVERY_COLUMNS}, a.payload, a.watchlist
"""

_RECORD = """
UPDATE deliveries d SET state = o.state,
    delivered_at = CASE WHEN o.state = 'delivered' THEN o.at ELSE d.delivered_at END,
    next_attempt = CASE WHEN o.state = 'pending' THEN o.next ELSE d.next_attempt END,
    last_attempt = CASE WHEN o.state = 'delivered' THEN d.last_attempt ELSE o.at END,
    last_status = o.status, last_error = o.error, lease_until = NULL, lease_owner = NULL
FROM unnest(%(alert)s::text[], %(channel)s::text[], %(state)s::text[], %(at)s::timestamptz[],
            %(status)s::int[], %(error)s::text[], %(next)s::timestamptz[])
     AS o(alert_id, channel, state, at, status, error, next)
WHERE d.alert_id = o.alert_id AND d.channel = o.channel AND d.state <> 'delivered'
RETURNING d.alert_id, d.channel
"""


def _record_params(outcomes: list[DeliveryOutcome]) -> dict[str, Any]:
    return {
        "alert": [o.alert_id for o in outcomes],
        "channel": [o.channel for o in outcomes],
        "state": [o.state for o in outcomes],
        "at": [o.at for o in outcomes],
        "status": [o.status for o in outcomes],
        "error": [None if o.state == "delivered" else text(o.error) for o in outcomes],
        "next": [o.next_attempt if o.state == "pending" else None for o in outcomes],
    }


def _skipped(alert_id: str, channel: str) -> None:
    log.info(
        "delivery transition skipped alert=%s channel=%s reason=delivered_or_missing",
        alert_id,
        channel,
    )


class PgOutbox(PgBase):
    async def claim_deliveries(
        self, channel: str, now: datetime, limit: int, lease: float, owner: str | None = None
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        rows = await self._fetch(
            _CLAIM,
            {
                "channel": channel,
                "now": now,
                "limit": limit,
                "until": now + timedelta(seconds=lease),
                "owner": owner or self.identity,
            },
        )
        return sorted((delivery_from_row(r, t, j, True) for r in rows), key=delivery_order)

    async def _transition(self, outcome: DeliveryOutcome) -> None:
        await self.record_outcomes([outcome])

    async def mark_delivered(
        self, alert_id: str, channel: str, status: int | None, at: datetime
    ) -> None:
        await self._transition(DeliveryOutcome(alert_id, channel, "delivered", at, status))

    async def mark_retry(
        self,
        alert_id: str,
        channel: str,
        next_attempt: datetime,
        status: int | None,
        error: str,
        at: datetime,
    ) -> None:
        await self._transition(
            DeliveryOutcome(alert_id, channel, "pending", at, status, error, next_attempt)
        )

    async def mark_failed(
        self, alert_id: str, channel: str, status: int | None, error: str, at: datetime
    ) -> None:
        await self._transition(DeliveryOutcome(alert_id, channel, "failed", at, status, error))

    async def record_outcomes(self, outcomes: list[DeliveryOutcome]) -> list[bool]:
        """One statement per run of distinct rows (usually one); several run in a transaction."""
        if not outcomes:
            return []
        for o in outcomes:
            check_outcome(o)
        runs = distinct_runs([(o.alert_id, o.channel) for o in outcomes])
        applied = [False] * len(outcomes)
        if len(runs) == 1:
            rows = await self._fetch(_RECORD, _record_params(outcomes))
            done = {(r["alert_id"], r["channel"]) for r in rows}
            applied = [(o.alert_id, o.channel) in done for o in outcomes]
        else:
            async with self._tx() as conn:
                for run in runs:
                    rows = await self._rows(
                        conn, _RECORD, _record_params([outcomes[i] for i in run])
                    )
                    done = {(r["alert_id"], r["channel"]) for r in rows}
                    for i in run:
                        applied[i] = (outcomes[i].alert_id, outcomes[i].channel) in done
        for o, ok in zip(outcomes, applied, strict=True):
            if not ok:
                _skipped(o.alert_id, o.channel)
        return applied

    async def release_deliveries(self, rows: list[Delivery]) -> int:
        leased = [r for r in rows if r.lease_until is not None]
        if not leased:
            return 0
        async with self._conn() as conn:
            released = await self._run(
                conn,
                # SET expressions all see the row as it was before this UPDATE.
                "UPDATE deliveries d SET state = 'pending', "
                "attempts = GREATEST(d.attempts - 1, 0), lease_until = NULL, lease_owner = NULL, "
                "first_attempt = CASE WHEN d.first_attempt = d.last_attempt THEN NULL "
                "  ELSE d.first_attempt END, "
                "last_attempt = CASE WHEN d.first_attempt = d.last_attempt THEN NULL "
                "  ELSE d.last_attempt END "
                "FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]) "
                "  AS r(alert_id, channel, owner, lease_until) "
                "WHERE d.alert_id = r.alert_id AND d.channel = r.channel "
                "AND d.state = 'in_flight' AND d.lease_owner = r.owner "
                "AND d.lease_until = r.lease_until",
                (
                    [r.alert_id for r in leased],
                    [r.channel for r in leased],
                    [r.lease_owner or self.identity for r in leased],
                    [r.lease_until for r in leased],
                ),
            )
        log.info("outbox released unsent claims count=%d url=%s", released, self.description)
        return released

    async def next_delivery_time(self, channels: list[str]) -> datetime | None:
        if not channels:
            return None
        rows = await self._fetch(
            "SELECT LEAST("
            "  (SELECT MIN(next_attempt) FROM deliveries WHERE state = 'pending' "
            "   AND channel = ANY(%(ch)s::text[])), "
            "  (SELECT MIN(lease_until) FROM deliveries WHERE state = 'in_flight' "
            "   AND channel = ANY(%(ch)s::text[]))) AS t",
            {"ch": channels},
        )
        return t(rows[0]["t"])

    async def pending_count(self, channels: list[str] | None = None) -> int:
        if channels is None:
            rows = await self._fetch(
                "SELECT COUNT(*) AS n FROM deliveries WHERE state IN ('pending', 'in_flight')",
                None,
            )
        else:
            rows = await self._fetch(
                "SELECT COUNT(*) AS n FROM deliveries WHERE state IN ('pending', 'in_flight') "
                "AND channel = ANY(%s::text[])",
                (channels,),
            )
        return int(rows[0]["n"])

    async def outbox_summary(self) -> tuple[int, datetime | None]:
        rows = await self._fetch(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM deliveries "
            "WHERE state IN ('pending', 'in_flight')",
            None,
        )
        return int(rows[0]["n"]), t(rows[0]["oldest"])

    async def get_alert(self, alert_id: str) -> AlertRecord | None:
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
        cols = "id, watchlist, article_id, created_at, payload, kind, story_alert_id"
        async with self._conn() as conn:
            rows = await self._rows(
                conn,
                f"SELECT {cols} FROM alerts a "
                "WHERE (%(since)s::timestamptz IS NULL OR a.created_at >= %(since)s) "
                "AND (CASE WHEN %(id)s::text IS NOT NULL THEN a.id = %(id)s "
                "     WHEN %(art)s::bigint IS NOT NULL THEN a.article_id = %(art)s "
                "     ELSE a.kind = 'match' END) "
                "AND (%(wl)s::text IS NULL OR a.watchlist = %(wl)s) "
                "AND (NOT %(failed)s OR EXISTS (SELECT 1 FROM deliveries d "
                "     WHERE d.state = 'failed' AND (d.alert_id = a.id OR d.alert_id IN "
                "     (SELECT c.id FROM alerts c WHERE c.story_alert_id = a.id)))) "
                "ORDER BY a.created_at DESC, a.id LIMIT %(limit)s OFFSET %(offset)s",
                {
                    "since": since,
                    "failed": failed_only,
                    "limit": limit,
                    "offset": max(0, offset),
                    "id": alert_id,
                    "wl": watchlist,
                    "art": article_id,
                },
            )
            ids = [row["id"] for row in rows]
            copies = await self._rows(
                conn,
                f"SELECT {cols} FROM alerts WHERE story_alert_id = ANY(%s::text[]) "
                "ORDER BY created_at, id",
                (ids,),
            )
            deliveries = await self._rows(
                conn,
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d "
                "WHERE d.alert_id = ANY(%s::text[]) ORDER BY d.channel",
                (ids + [row["id"] for row in copies],),
            )
        by_alert: dict[str, list[Delivery]] = {}
        for row in deliveries:
            by_alert.setdefault(row["alert_id"], []).append(delivery_from_row(row, t, j))

        def record(row: dict[str, Any]) -> AlertRecord:
            return AlertRecord(
                id=row["id"],
                watchlist=row["watchlist"],
                article_id=row["article_id"],
                created_at=t(row["created_at"]) or utcnow(),
                payload=row["payload"],
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
        if alert_id is None and not failed:
            raise ValueError("requeue needs an alert id or failed=True")
        where = "state = 'failed'" if failed else "state IN ('pending', 'failed')"
        params: list[Any] = [now or utcnow()]
        if alert_id is not None:
            where += " AND alert_id = %s"
            params.append(alert_id)
        async with self._conn() as conn:
            return await self._run(
                conn,
                "UPDATE deliveries SET state = 'pending', next_attempt = %s, "
                f"first_attempt = NULL, lease_until = NULL, lease_owner = NULL WHERE {where}",
                params,
            )
