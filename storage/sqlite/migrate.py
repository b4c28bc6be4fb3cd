"""SQLite schema versions: ``PRAGMA user_version`` and ``storage/migrations/NNNN_name.sql``.

Migrations are applied in order inside one ``BEGIN IMMEDIATE`` transaction (all or none) and
never drop data; a database newer than this code is refused untouched.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import aiosqlite

from storage.base import StorageError
from storage.schema import load_migrations

log = logging.getLogger(__name__)


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


async def user_version(db: aiosqlite.Connection) -> int:
    rows = await db.execute_fetchall("PRAGMA user_version")
    return int(next(iter(rows))[0])


def too_new(path: str, version: int, latest: int) -> str:
    return (
        f"database {path} has schema version {version}, newer than this feedwatch "
        f"understands ({latest}); upgrade feedwatch or use another database"
    )


def too_old(path: str, version: int, latest: int) -> str:
    return (
        f"database {path} has schema version {version}, older than this feedwatch's "
        f"({latest}); read-only commands do not upgrade it: start `feedwatch run` "
        "(or `feedwatch run --once`) once, which does"
    )


async def migrate(db: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to ``LATEST_VERSION``; another process migrating at once is waited for."""
    migrations = MIGRATIONS  # read at call time: tests swap in a broken one
    latest = migrations[-1].version if migrations else 0
    version = await user_version(db)
    if version > latest:
        raise StorageError(too_new(path, version, latest))
    if version == latest:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        start = await user_version(db)
        if start > latest:
            raise StorageError(too_new(path, start, latest))
        for migration in migrations[start:]:
            for statement in split_statements(migration.sql):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {migration.version}")
        await db.execute("COMMIT")
    except BaseException:
        await asyncio.shield(db.execute("ROLLBACK"))
        raise
    if start < latest:
        log.info("storage migrated path=%s from=%d to=%d", path, start, latest)
