"""PostgreSQL schema versions: ``feedwatch_schema`` and ``storage/migrations/postgres/*.sql``.

Its own numbering (SQLite's files and versions stay as they are). All pending migrations run in
one transaction under an advisory lock, so daemons starting at once migrate once; PostgreSQL's
DDL is transactional, so a failing migration leaves nothing behind.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from storage.base import StorageError
from storage.schema import load_migrations

log = logging.getLogger("storage.postgres")

MIGRATIONS = load_migrations("migrations/postgres")
LATEST_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 0
_LOCK_KEY = 0x66656564  # "feed": one advisory lock for feedwatch migrations


async def current_version(conn: psycopg.AsyncConnection[Any]) -> int:
    # A catalog query (not to_regclass, whose cache may lag within a transaction), so a table
    # another daemon created while we waited for the migration lock is seen.
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
        "WHERE schemaname = current_schema() AND tablename = 'feedwatch_schema')"
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM feedwatch_schema")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def too_new_message(where: str, version: int) -> str:
    return (
        f"PostgreSQL {where} has feedwatch schema version {version}, newer than this feedwatch "
        f"understands ({LATEST_VERSION}); upgrade feedwatch or use another database"
    )


async def check_current(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    """For read-only use: the schema must be exactly this version; nothing is changed."""
    version = await current_version(conn)
    if version == 0:
        raise StorageError(
            f"PostgreSQL {where} holds no feedwatch data yet (`feedwatch run` sets it up)"
        )
    if version > LATEST_VERSION:
        raise StorageError(too_new_message(where, version))
    if version < LATEST_VERSION:
        raise StorageError(
            f"PostgreSQL {where} has feedwatch schema version {version}, older than this "
            f"feedwatch's ({LATEST_VERSION}); read-only commands do not upgrade it: start "
            "`feedwatch run` once, which does"
        )


async def migrate(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    if await current_version(conn) == LATEST_VERSION:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        start = await current_version(conn)  # another daemon may have migrated meanwhile
        if start > LATEST_VERSION:
            raise StorageError(too_new_message(where, start))
        for migration in MIGRATIONS[start:]:
            await conn.execute(migration.sql.encode())  # several statements: no parameters
            await conn.execute(
                "INSERT INTO feedwatch_schema (version) VALUES (%s)", (migration.version,)
            )
    if start < LATEST_VERSION:
        log.info("storage migrated url=%s from=%d to=%d", where, start, LATEST_VERSION)
