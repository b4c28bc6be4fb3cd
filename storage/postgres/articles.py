"""Articles on PostgreSQL: dedup lookups, and a whole batch of articles with their alerts and
outbox rows stored by one statement (one round trip)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from storage.base import Article, NewArticle
from storage.postgres.connection import PgBase
from storage.postgres.values import json_text, t, text
from storage.rows import ARTICLE_COLUMNS, article_from_row, dump_payload, utcnow

log = logging.getLogger("storage.postgres")

# Ids come from the sequence up front (``ids``, an array indexed by the article's position), so
# every row of the batch is known by its position whether or not it was inserted; ``ON CONFLICT
# DO NOTHING`` drops the duplicates (also one earlier in the same batch: rows go in in order).
# Alerts are written only for articles inserted now and only once (an existing id is left
# alone), outbox rows only for alerts inserted now. Rows are matched with ``IN (subquery)``
# (hashed) and array subscripts, never by joining CTEs: the planner cannot estimate those and
# would loop over them (quadratic in the batch). The foreign keys are checked at the end of the
# statement, when all of it is in place; data-modifying CTEs run to completion whether or not
# the final SELECT reads them.
_ADD_ARTICLES = """
WITH ids AS MATERIALIZED (
    SELECT array_agg(nextval(pg_get_serial_sequence('articles', 'id'))) AS ids
    FROM generate_series(1, %(n)s)
),
ins AS (
    INSERT INTO articles (id, feed_id, guid, url, canonical_url, title, summary, body, author,
                          published, language, extract_error, fetched_at)
    SELECT (SELECT ids FROM ids)[u.ord], u.feed_id, u.guid, u.url, u.canonical_url, u.title,
           u.summary, u.body, u.author, u.published, u.language, u.extract_error, u.fetched_at
    FROM unnest(%(feed_id)s::bigint[], %(guid)s::text[], %(url)s::text[], %(canonical)s::text[],
                %(title)s::text[], %(summary)s::text[], %(body)s::text[], %(author)s::text[],
                %(published)s::timestamptz[], %(language)s::text[], %(extract_error)s::text[],
                %(fetched_at)s::timestamptz[])
         WITH ORDINALITY AS u(feed_id, guid, url, canonical_url, title, summary, body, author,
                              published, language, extract_error, fetched_at, ord)
    ORDER BY u.ord
    ON CONFLICT DO NOTHING
    RETURNING id, feed_id
),
ins_alerts AS (
    INSERT INTO alerts (id, watchlist, article_id, created_at, payload)
    SELECT x.id, x.watchlist, x.article_id, (%(fetched_at)s::timestamptz[])[x.art_ord],
           x.payload::jsonb
    FROM (SELECT a.id, a.watchlist, (SELECT ids FROM ids)[a.art_ord] AS article_id, a.payload, a.n,
                 a.art_ord
          FROM unnest(%(al_id)s::text[], %(al_watchlist)s::text[], %(al_ord)s::int[],
                      %(al_payload)s::text[])
               WITH ORDINALITY AS a(id, watchlist, art_ord, payload, n)) x
    WHERE x.article_id IN (SELECT id FROM ins)
    ORDER BY x.n
    ON CONFLICT DO NOTHING
    RETURNING id, article_id
),
ins_deliveries AS (
    INSERT INTO deliveries (alert_id, channel, next_attempt, created_at)
    SELECT d.alert_id, d.channel, d.next_attempt, (%(fetched_at)s::timestamptz[])[d.art_ord]
    FROM unnest(%(d_alert)s::text[], %(d_ord)s::int[], %(d_channel)s::text[],
                %(d_next)s::timestamptz[]) AS d(alert_id, art_ord, channel, next_attempt)
    WHERE (d.alert_id, (SELECT ids FROM ids)[d.art_ord]) IN (SELECT id, article_id FROM ins_alerts)
    ON CONFLICT DO NOTHING
    RETURNING 1
),
counted AS (
    UPDATE feeds f SET total_items = f.total_items + c.n
    FROM (SELECT feed_id, count(*) AS n FROM ins GROUP BY feed_id) c
    WHERE f.id = c.feed_id
    RETURNING 1
)
SELECT (SELECT ids FROM ids) AS ids,
       (SELECT array_agg(id) FROM ins) AS stored,
       (SELECT array_agg(id) FROM ins_alerts) AS alerts
"""


class PgArticles(PgBase):
    async def known_items(
        self, feed_id: int, guids: list[str], canonical_urls: list[str]
    ) -> tuple[set[str], set[str]]:
        """Both lookups in one statement."""
        if not guids and not canonical_urls:
            return set(), set()
        rows = await self._fetch(
            "SELECT 'g' AS kind, guid AS value FROM articles "
            "WHERE feed_id = %(feed)s AND guid = ANY(%(guids)s::text[]) "
            "UNION ALL SELECT 'u', canonical_url FROM articles "
            "WHERE canonical_url = ANY(%(urls)s::text[])",
            {
                "feed": feed_id,
                "guids": [text(g) for g in guids],
                "urls": [text(u) for u in canonical_urls],
            },
        )
        return (
            {r["value"] for r in rows if r["kind"] == "g"},
            {r["value"] for r in rows if r["kind"] == "u"},
        )

    async def add_articles(self, articles: list[NewArticle]) -> list[int | None]:
        if not articles:
            return []
        now = utcnow()
        p: dict[str, Any] = {
            "now": now,
            "n": len(articles),
            "feed_id": [a.feed_id for a in articles],
            "guid": [text(a.guid) for a in articles],
            "url": [text(a.url) for a in articles],
            "canonical": [text(a.canonical_url) for a in articles],
            "title": [text(a.title) for a in articles],
            "summary": [text(a.summary) for a in articles],
            "body": [text(a.body) for a in articles],
            "author": [text(a.author) for a in articles],
            "published": [a.published for a in articles],
            "language": [text(a.language) for a in articles],
            "extract_error": [text(a.extract_error) for a in articles],
            "fetched_at": [a.fetched_at or now for a in articles],
            "al_id": [],
            "al_watchlist": [],
            "al_ord": [],
            "al_payload": [],
            "d_alert": [],
            "d_ord": [],
            "d_channel": [],
            "d_next": [],
        }
        for ord_, article in enumerate(articles, start=1):
            for alert in article.alerts:
                p["al_id"].append(alert.id)
                p["al_watchlist"].append(alert.watchlist)
                p["al_ord"].append(ord_)
                p["al_payload"].append(
                    json_text(dump_payload(alert.id, alert.payload), alert.payload)
                )
                for channel in dict.fromkeys(alert.channels):
                    p["d_alert"].append(alert.id)
                    p["d_ord"].append(ord_)
                    p["d_channel"].append(channel)
                    # Alerts carry the caller's time (its clock), not the database's.
                    p["d_next"].append(alert.not_before.get(channel) or article.fetched_at or now)
        [row] = await self._fetch(_ADD_ARTICLES, p)
        stored = set(row["stored"] or [])
        results: list[int | None] = [int(i) if i in stored else None for i in row["ids"]]
        stored_alerts = set(row["alerts"] or [])
        for article, article_id in zip(articles, results, strict=True):
            if article_id is None:
                continue
            for alert in article.alerts:
                if alert.id not in stored_alerts:
                    log.warning(
                        "alert exists already alert=%s watchlist=%s article=%d",
                        alert.id,
                        alert.watchlist,
                        article_id,
                    )
        return results

    async def get_article(self, article_id: int) -> Article | None:
        rows = await self._fetch(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a JOIN feeds f ON f.id = a.feed_id "
            "WHERE a.id = %s",
            (article_id,),
        )
        return article_from_row(rows[0], t) if rows else None

    async def articles_since(self, since: datetime, limit: int = 10000) -> list[Article]:
        rows = await self._fetch(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a JOIN feeds f ON f.id = a.feed_id "
            "WHERE a.fetched_at >= %s ORDER BY a.fetched_at DESC, a.id DESC LIMIT %s",
            (since, limit),
        )
        return [article_from_row(row, t) for row in rows]

    async def prune_text(self, before: datetime, batch: int = 5000) -> int:
        """Small batches, each its own statement; rows another daemon is pruning are skipped."""
        total = 0
        while True:
            async with self._conn() as conn:
                n = await self._run(
                    conn,
                    "UPDATE articles SET body = '', summary = '' WHERE id IN ("
                    "SELECT id FROM articles WHERE fetched_at < %s "
                    "AND (body <> '' OR summary <> '') LIMIT %s FOR UPDATE SKIP LOCKED)",
                    (before, batch),
                )
            total += n
            if n < batch:
                return total
