"""The daemon registry on PostgreSQL: who runs, since when, and until when it counts as alive."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from storage.base import DaemonInfo, StorageError
from storage.postgres.connection import PgBase
from storage.postgres.values import t
from storage.rows import DAEMON_COLUMNS, DAEMON_KEEP_DAYS, daemon_from_row, split_identity

log = logging.getLogger("storage.postgres")


class PgDaemons(PgBase):
    async def register_daemon(self, now: datetime, version: str, ttl: float) -> DaemonInfo:
        host, pid = split_identity(self.identity)
        async with self._tx() as conn:
            await self._run(
                conn,
                "DELETE FROM daemons WHERE (stopped_at IS NOT NULL OR alive_until <= %s) "
                "AND heartbeat_at < %s",
                (now, now - timedelta(days=DAEMON_KEEP_DAYS)),
            )
            rows = await self._rows(
                conn,
                "INSERT INTO daemons (id, host, pid, version, started_at, heartbeat_at, "
                "alive_until) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "version = excluded.version, heartbeat_at = excluded.heartbeat_at, "
                f"alive_until = excluded.alive_until, stopped_at = NULL RETURNING {DAEMON_COLUMNS}",
                (self.identity, host, pid, version, now, now, now + timedelta(seconds=ttl)),
            )
        return daemon_from_row(rows[0], t)

    async def heartbeat(self, now: datetime, ttl: float) -> None:
        """One statement; it also reports whether the registration had lapsed meanwhile."""
        rows = await self._fetch(
            "UPDATE daemons d SET heartbeat_at = %(now)s, alive_until = %(until)s "
            "FROM (SELECT id, alive_until FROM daemons WHERE id = %(id)s FOR UPDATE) old "
            "WHERE d.id = old.id AND d.stopped_at IS NULL RETURNING old.alive_until AS was",
            {"now": now, "until": now + timedelta(seconds=ttl), "id": self.identity},
        )
        if not rows:
            raise StorageError(
                f"daemon {self.identity} is not registered (register_daemon comes first)"
            )
        was = t(rows[0]["was"])
        if was is not None and was <= now:
            log.warning(
                "daemon registration had lapsed daemon=%s since=%s; its leases may have been "
                "taken over",
                self.identity,
                was.isoformat(),
            )

    async def unregister_daemon(self, now: datetime) -> None:
        async with self._tx() as conn:
            await self._run(
                conn,
                "UPDATE daemons SET stopped_at = %s, alive_until = LEAST(alive_until, %s) "
                "WHERE id = %s",
                (now, now, self.identity),
            )
            await self._run(
                conn,
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = %s",
                (self.identity,),
            )
            await self._run(
                conn,
                "UPDATE deliveries SET state = 'pending', next_attempt = LEAST(next_attempt, %s), "
                "lease_until = NULL, lease_owner = NULL "
                "WHERE state = 'in_flight' AND lease_owner = %s",
                (now, self.identity),
            )

    async def list_daemons(self) -> list[DaemonInfo]:
        rows = await self._fetch(
            f"SELECT {DAEMON_COLUMNS} FROM daemons ORDER BY started_at DESC, id", None
        )
        return [daemon_from_row(row, t) for row in rows]
