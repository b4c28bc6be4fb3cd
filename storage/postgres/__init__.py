"""PostgreSQL implementation of ``Storage``: psycopg 3 (async) with its connection pool.

Same schema meaning as SQLite (``storage/migrations/postgres``: timestamptz, jsonb), made for
several daemons on one database: claims take rows with ``FOR UPDATE SKIP LOCKED``, so
concurrent daemons split the work, and batch writes are one ``unnest`` statement each, so a
poll costs a few round trips whatever its size. One module per concern: ``connection``,
``migrate``, ``feeds``, ``articles``, ``outbox``, ``daemons``, ``bulk``.
"""

from __future__ import annotations

from storage.postgres.articles import PgArticles
from storage.postgres.bulk import PgBulk
from storage.postgres.daemons import PgDaemons
from storage.postgres.feeds import PgFeeds
from storage.postgres.migrate import LATEST_VERSION, MIGRATIONS
from storage.postgres.outbox import PgOutbox
from storage.postgres.search import PgSearch

__all__ = ["LATEST_VERSION", "MIGRATIONS", "PostgresStorage"]


class PostgresStorage(PgFeeds, PgArticles, PgOutbox, PgDaemons, PgBulk, PgSearch):
    """``Storage`` on a PostgreSQL database. Safe to share between the tasks of one event loop."""
