"""SQLite implementation of ``Storage``: one aiosqlite connection, WAL, versioned migrations.

One module per concern: ``connection`` (opening by role, the daemon lock, transactions),
``migrate`` (schema versions), ``feeds``, ``articles``, ``outbox`` (alerts and deliveries),
``daemons`` (the registry) and ``bulk`` (export/import for ``storage.copy``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.base import Role
from storage.schema import Migration
from storage.sqlite.articles import SQLiteArticles
from storage.sqlite.bulk import SQLiteBulk
from storage.sqlite.connection import BUSY_TIMEOUT_MS
from storage.sqlite.convert import from_db_time, to_db_time
from storage.sqlite.daemons import SQLiteDaemons
from storage.sqlite.feeds import SQLiteFeeds
from storage.sqlite.inspect import inspect_database
from storage.sqlite.migrate import LATEST_VERSION, MIGRATIONS, split_statements
from storage.sqlite.outbox import SQLiteOutbox
from storage.sqlite.search import SQLiteSearch

__all__ = [
    "BUSY_TIMEOUT_MS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "SQLiteStorage",
    "from_db_time",
    "split_statements",
    "to_db_time",
]


class SQLiteStorage(
    SQLiteFeeds, SQLiteArticles, SQLiteOutbox, SQLiteDaemons, SQLiteBulk, SQLiteSearch
):
    """``Storage`` on one SQLite file. Safe to share between the tasks of one event loop.

    ``search_index=False`` stops keeping the full-text index current (and empties it): only
    for measuring what the index costs (``bench/search.py``). The next open with the default
    rebuilds it.
    """

    async def open(self, role: Role = "command") -> None:
        first = self._db is None
        await super().open(role)
        if first and role != "readonly":
            try:
                await self._sync_search_index(self._search_index)
            except BaseException:
                await self.close()
                raise

    async def inspect(self) -> list[str]:
        """What would stop a daemon from using this file, changing nothing (`check`)."""
        return await asyncio.to_thread(inspect_database, Path(self.path))
