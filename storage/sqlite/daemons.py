"""The daemon registry on SQLite: who runs, since when, and until when it counts as alive."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from storage.base import DaemonInfo, StorageError
from storage.rows import DAEMON_COLUMNS, DAEMON_KEEP_DAYS, daemon_from_row, split_identity
from storage.sqlite.connection import SQLiteBase
from storage.sqlite.convert import from_db_time, to_db_time

log = logging.getLogger("storage.sqlite")


class SQLiteDaemons(SQLiteBase):
    async def register_daemon(self, now: datetime, version: str, ttl: float) -> DaemonInfo:
        host, pid = split_identity(self.identity)
        at = to_db_time(now)
        until = to_db_time(now + timedelta(seconds=ttl))
        forget = to_db_time(now - timedelta(days=DAEMON_KEEP_DAYS))
        async with self._write() as db:
            await db.execute(
                "DELETE FROM daemons WHERE (stopped_at IS NOT NULL OR alive_until <= ?) "
                "AND heartbeat_at < ?",
                (at, forget),
            )
            rows = await db.execute_fetchall(
                "INSERT INTO daemons (id, host, pid, version, started_at, heartbeat_at, "
                "alive_until) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "version = excluded.version, heartbeat_at = excluded.heartbeat_at, "
                f"alive_until = excluded.alive_until, stopped_at = NULL RETURNING {DAEMON_COLUMNS}",
                (self.identity, host, pid, version, at, at, until),
            )
        (row,) = rows
        return daemon_from_row(row, from_db_time)

    async def heartbeat(self, now: datetime, ttl: float) -> None:
        at = to_db_time(now)
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT alive_until FROM daemons WHERE id = ? AND stopped_at IS NULL",
                    (self.identity,),
                )
            )
            if not rows:
                raise StorageError(
                    f"daemon {self.identity} is not registered (register_daemon comes first)"
                )
            if rows[0][0] <= at:
                log.warning(
                    "daemon registration had lapsed daemon=%s since=%s; its leases may have "
                    "been taken over",
                    self.identity,
                    rows[0][0],
                )
            await db.execute(
                "UPDATE daemons SET heartbeat_at = ?, alive_until = ? WHERE id = ?",
                (at, to_db_time(now + timedelta(seconds=ttl)), self.identity),
            )

    async def unregister_daemon(self, now: datetime) -> None:
        at = to_db_time(now)
        async with self._write() as db:
            await db.execute(
                "UPDATE daemons SET stopped_at = ?, alive_until = MIN(alive_until, ?) WHERE id = ?",
                (at, at, self.identity),
            )
            await db.execute(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                (self.identity,),
            )
            await db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt = MIN(next_attempt, ?), "
                "lease_until = NULL, lease_owner = NULL "
                "WHERE state = 'in_flight' AND lease_owner = ?",
                (at, self.identity),
            )

    async def list_daemons(self) -> list[DaemonInfo]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT {DAEMON_COLUMNS} FROM daemons ORDER BY started_at DESC, id"
            )
        return [daemon_from_row(row, from_db_time) for row in rows]
