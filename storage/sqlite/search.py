"""Search and the dashboard's reads on SQLite: FTS5 (``articles_fts``, migration 0006)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from storage.base import ActivityHour, FeedEvent, SearchHit
from storage.schema import load_migrations
from storage.search import (
    SNIPPET_SOURCE_CHARS,
    fill_hours,
    fts5_query,
    hit_from_row,
    hour_start,
    query_node,
)
from storage.sqlite.connection import SQLiteBase
from storage.sqlite.convert import from_db_time, json_list, opt_time, to_db_time

log = logging.getLogger("storage.sqlite")

# bm25 weights of title, summary, body: a word in the title counts most.
_BM25 = "bm25(articles_fts, 10.0, 3.0, 1.0)"
_HIT_COLUMNS = (
    "a.id, a.feed_id, f.key AS feed_key, COALESCE(f.name, f.title) AS feed_name, a.title, "
    f"a.url, a.published, a.fetched_at, substr(a.summary, 1, {SNIPPET_SOURCE_CHARS}) AS summary, "
    f"substr(a.body, 1, {SNIPPET_SOURCE_CHARS}) AS body"
)
# What keeps the index current on update and delete (0006): dropped by ``search_index=False``,
# restored on open. New articles are indexed by the statements below (one per batch).
INDEX_OBJECTS = ("articles_fts_delete", "articles_fts_update")
_INDEX_SELECT = (
    "INSERT INTO articles_fts (rowid, title, summary, body) "
    "SELECT id, title, summary, CASE WHEN body = summary THEN '' ELSE body END FROM articles"
)
INDEX_FROM_ID = f"{_INDEX_SELECT} WHERE id >= ?"  # add_articles: the ids it just handed out
INDEX_IDS = f"{_INDEX_SELECT} WHERE id IN (SELECT value FROM json_each(?))"  # import_rows


def _index_statements() -> list[str]:
    from storage.sqlite.migrate import split_statements

    sql = next(m.sql for m in load_migrations() if m.version == 6)
    return [
        s
        for s in split_statements(sql)
        if any(s.startswith(f"CREATE TRIGGER {name} ") for name in INDEX_OBJECTS)
    ]


class SQLiteSearch(SQLiteBase):
    async def _sync_search_index(self, enabled: bool) -> None:
        """Keep the FTS index current (the default), or stop (benchmarks measure its cost).

        Turning it back on rebuilds the index from the stored articles.
        """
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' "
                "AND name IN (SELECT value FROM json_each(?))",
                (json_list(INDEX_OBJECTS),),
            )
        if (next(iter(rows))[0] == len(INDEX_OBJECTS)) == enabled:
            return
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND name IN (SELECT value FROM json_each(?))",
                (json_list(INDEX_OBJECTS),),
            )
            present = {row[0] for row in rows}
            if enabled and len(present) < len(INDEX_OBJECTS):
                for name in present:
                    await db.execute(f"DROP TRIGGER {name}")
                for statement in _index_statements():
                    await db.execute(statement)
                await db.execute("INSERT INTO articles_fts (articles_fts) VALUES ('delete-all')")
                await db.execute(_INDEX_SELECT)
                log.info("search index rebuilt path=%s", self.path)
            elif not enabled:
                for name in present:
                    await db.execute(f"DROP TRIGGER {name}")
                await db.execute("INSERT INTO articles_fts (articles_fts) VALUES ('delete-all')")

    async def search_articles(
        self,
        query: str | None,
        *,
        feed_keys: list[str] | None = None,
        watchlist: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[SearchHit]:
        node = query_node(query)
        where: list[str] = []
        params: dict[str, Any] = {"limit": max(0, limit), "offset": max(0, offset)}
        if since is not None:
            where.append("a.fetched_at >= :since")
            params["since"] = to_db_time(since)
        if feed_keys is not None:
            where.append(
                "a.feed_id IN (SELECT id FROM feeds WHERE key IN (SELECT value FROM json_each(:keys)))"
            )
            params["keys"] = json_list(feed_keys)
        if watchlist is not None:
            where.append(
                "EXISTS (SELECT 1 FROM alerts al WHERE al.article_id = a.id AND al.watchlist = :wl)"
            )
            params["wl"] = watchlist
        if node is None:
            cond = " AND ".join(where) or "1"
            sql = (
                f"WITH top AS (SELECT a.id, 0.0 AS score FROM articles a WHERE {cond} "
                "ORDER BY a.fetched_at DESC, a.id DESC LIMIT :limit OFFSET :offset) "
                f"SELECT {_HIT_COLUMNS}, top.score FROM top JOIN articles a ON a.id = top.id "
                "JOIN feeds f ON f.id = a.feed_id ORDER BY a.fetched_at DESC, a.id DESC"
            )
        else:
            params["match"] = fts5_query(node)
            cond = " AND ".join(["articles_fts MATCH :match", *where])
            # Ranked ids first, then the text of that page only. Without a filter the index
            # alone ranks (joining every match to its article costs a third more).
            source = "articles_fts JOIN articles a ON a.id = articles_fts.rowid"
            ranked = (
                f"SELECT articles_fts.rowid AS id, -{_BM25} AS score FROM articles_fts "
                "WHERE articles_fts MATCH :match "
                "ORDER BY score DESC, articles_fts.rowid DESC LIMIT :limit OFFSET :offset"
                if not where
                else f"SELECT a.id, -{_BM25} AS score FROM {source} WHERE {cond} "
                "ORDER BY score DESC, a.id DESC LIMIT :limit OFFSET :offset"
            )
            sql = (
                f"WITH top AS ({ranked}) "
                f"SELECT {_HIT_COLUMNS}, top.score FROM top JOIN articles a ON a.id = top.id "
                "JOIN feeds f ON f.id = a.feed_id ORDER BY top.score DESC, a.id DESC"
            )
        async with self._read() as db:
            rows = list(await db.execute_fetchall(sql, params))
            alerted = await db.execute_fetchall(
                "SELECT article_id, watchlist FROM alerts "
                "WHERE article_id IN (SELECT value FROM json_each(?)) ORDER BY watchlist",
                (json_list(row["id"] for row in rows),),
            )
        by_article: dict[int, list[str]] = {}
        for row in alerted:
            by_article.setdefault(row[0], []).append(row[1])
        return [
            hit_from_row(row, from_db_time, node, tuple(by_article.get(row["id"], ())))
            for row in rows
        ]

    async def feed_events(self, feed_id: int, limit: int = 50) -> list[FeedEvent]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT feed_id, at, http_status, error FROM feed_events WHERE feed_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (feed_id, limit),
            )
        return [
            FeedEvent(row[0], from_db_time(row[1]) or datetime.min, row[2], row[3]) for row in rows
        ]

    async def activity(self, since: datetime, until: datetime) -> list[ActivityHour]:
        lo, hi = to_db_time(hour_start(since)), to_db_time(until)
        counts: dict[datetime, dict[str, int]] = {}

        def add(hour: Any, key: str, n: int) -> None:
            at = from_db_time(hour + ":00:00Z" if len(hour) == 13 else hour)
            assert at is not None
            counts.setdefault(at, {})[key] = n

        async with self._read() as db:
            for row in await db.execute_fetchall(
                "SELECT hour, polls, errors FROM poll_hours WHERE hour >= ? AND hour < ?",
                (lo, hi),
            ):
                add(row[0], "polls", row[1])
                add(row[0], "errors", row[2])
            for table, column, key in (
                ("articles", "fetched_at", "articles"),
                ("alerts", "created_at", "alerts"),
            ):
                for row in await db.execute_fetchall(
                    f"SELECT substr({column}, 1, 13) AS h, COUNT(*) FROM {table} "
                    f"WHERE {column} >= ? AND {column} < ? GROUP BY h",
                    (lo, hi),
                ):
                    add(row[0], key, row[1])
        return fill_hours(since, until, counts)

    async def alert_counts(self, since: datetime | None = None) -> dict[str, int]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT watchlist, COUNT(*) FROM alerts WHERE (? IS NULL OR created_at >= ?) "
                "GROUP BY watchlist",
                (opt_time(since), opt_time(since)),
            )
        return {row[0]: row[1] for row in rows}

    async def delivery_counts(self) -> dict[str, int]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT state, COUNT(*) FROM deliveries GROUP BY state"
            )
        out = dict.fromkeys(("pending", "in_flight", "delivered", "failed"), 0)
        out.update({row[0]: row[1] for row in rows})
        return out
