"""Search and the dashboard's reads on PostgreSQL: ``articles.search`` (a generated tsvector
with a GIN index, migration 0002), ranked by ``ts_rank_cd``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.base import ActivityHour, FeedEvent, SearchHit
from storage.postgres.connection import PgBase
from storage.postgres.values import t
from storage.search import (
    SNIPPET_SOURCE_CHARS,
    fill_hours,
    hit_from_row,
    hour_start,
    pg_tsquery,
    query_node,
)

_HIT_COLUMNS = (
    "a.id, a.feed_id, f.key AS feed_key, COALESCE(f.name, f.title) AS feed_name, a.title, "
    f"a.url, a.published, a.fetched_at, left(a.summary, {SNIPPET_SOURCE_CHARS}) AS summary, "
    f"left(a.body, {SNIPPET_SOURCE_CHARS}) AS body"
)


class PgSearch(PgBase):
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
        params: list[Any] = []
        tsquery = ""
        if node is not None:
            tsquery = pg_tsquery(node, params)
        if since is not None:
            where.append("a.fetched_at >= %s")
            params.append(since)
        if feed_keys is not None:
            where.append("a.feed_id IN (SELECT id FROM feeds WHERE key = ANY(%s::text[]))")
            params.append(list(feed_keys))
        if watchlist is not None:
            where.append(
                "EXISTS (SELECT 1 FROM alerts al WHERE al.article_id = a.id AND al.watchlist = %s)"
            )
            params.append(watchlist)
        params += [max(0, limit), max(0, offset)]
        if node is None:
            cond = " AND ".join(where) or "true"
            sql = (
                f"WITH top AS (SELECT a.id, 0.0::float8 AS score FROM articles a WHERE {cond} "
                "ORDER BY a.fetched_at DESC, a.id DESC LIMIT %s OFFSET %s) "
                f"SELECT {_HIT_COLUMNS}, top.score FROM top JOIN articles a ON a.id = top.id "
                "JOIN feeds f ON f.id = a.feed_id ORDER BY a.fetched_at DESC, a.id DESC"
            )
        else:
            cond = " AND ".join(["a.search @@ q.q", *where])
            # Ranked ids first, then the text of that page only.
            sql = (
                f"WITH q AS MATERIALIZED (SELECT {tsquery} AS q), "
                "top AS (SELECT a.id, ts_rank_cd(a.search, q.q)::float8 AS score "
                f"FROM articles a, q WHERE {cond} "
                "ORDER BY score DESC, a.id DESC LIMIT %s OFFSET %s) "
                f"SELECT {_HIT_COLUMNS}, top.score FROM top JOIN articles a ON a.id = top.id "
                "JOIN feeds f ON f.id = a.feed_id ORDER BY top.score DESC, a.id DESC"
            )
        async with self._conn() as conn:
            rows = await self._rows(conn, sql, params)
            alerted = await self._rows(
                conn,
                "SELECT article_id, watchlist FROM alerts WHERE article_id = ANY(%s::bigint[]) "
                "ORDER BY watchlist",
                ([row["id"] for row in rows],),
            )
        by_article: dict[int, list[str]] = {}
        for row in alerted:
            by_article.setdefault(row["article_id"], []).append(row["watchlist"])
        return [hit_from_row(row, t, node, tuple(by_article.get(row["id"], ()))) for row in rows]

    async def feed_events(self, feed_id: int, limit: int = 50) -> list[FeedEvent]:
        rows = await self._fetch(
            "SELECT feed_id, at, http_status, error FROM feed_events WHERE feed_id = %s "
            "ORDER BY id DESC LIMIT %s",
            (feed_id, limit),
        )
        return [
            FeedEvent(r["feed_id"], t(r["at"]) or datetime.min, r["http_status"], r["error"])
            for r in rows
        ]

    async def activity(self, since: datetime, until: datetime) -> list[ActivityHour]:
        lo = hour_start(since)
        rows = await self._fetch(
            "SELECT hour, 'polls' AS k, polls AS n FROM poll_hours "
            "  WHERE hour >= %(lo)s AND hour < %(hi)s "
            "UNION ALL SELECT hour, 'errors', errors FROM poll_hours "
            "  WHERE hour >= %(lo)s AND hour < %(hi)s "
            "UNION ALL SELECT date_trunc('hour', fetched_at), 'articles', count(*) FROM articles "
            "  WHERE fetched_at >= %(lo)s AND fetched_at < %(hi)s GROUP BY 1 "
            "UNION ALL SELECT date_trunc('hour', created_at), 'alerts', count(*) FROM alerts "
            "  WHERE created_at >= %(lo)s AND created_at < %(hi)s GROUP BY 1",
            {"lo": lo, "hi": until},
        )
        counts: dict[datetime, dict[str, int]] = {}
        for r in rows:
            at = t(r["hour"])
            assert at is not None
            counts.setdefault(at, {})[r["k"]] = int(r["n"])
        return fill_hours(since, until, counts)

    async def alert_counts(self, since: datetime | None = None) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT watchlist, count(*) AS n FROM alerts "
            "WHERE (%(since)s::timestamptz IS NULL OR created_at >= %(since)s) GROUP BY watchlist",
            {"since": since},
        )
        return {r["watchlist"]: int(r["n"]) for r in rows}

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._fetch("SELECT state, count(*) AS n FROM deliveries GROUP BY state", None)
        out = dict.fromkeys(("pending", "in_flight", "delivered", "failed"), 0)
        out.update({r["state"]: int(r["n"]) for r in rows})
        return out
