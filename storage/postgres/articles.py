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

# Ids come from the sequence up front (``input``), so every row of the batch is known by its
# position whether or not it was inserted; ``ON CONFLICT DO NOTHING`` drops the duplicates
# (also one earlier in the same batch: rows go in in order). Alerts are written only for
# articles inserted now and only once (an existing id is left alone), outbox rows only for
# alerts inserted now. The foreign keys are checked at the end of the statement, when all of it
# is in place; data-modifying CTEs run to completion whether or not the final SELECT reads them.
_ADD_ARTICLES = """
WITH input AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('articles', 'id')) AS id, u.*
    FROM unnest(%(feed_id)s::bigint[], %(guid)s::text[], %(url)s::text[], %(canonical)s::text[],
                %(title)s::text[], %(summary)s::text[], %(body)s::text[], %(author)s::text[],
                %(published)s::timestamptz[], %(language)s::text[], %(extract_error)s::text[],
                %(fetched_at)s::timestamptz[])
         WITH ORDINALITY AS u(feed_id, guid, url, canonical_url, title, summary, body, author,
                              published, language, extract_error, fetched_at, ord)
),
ins AS (
    INSERT INTO articles (id, feed_id, guid, url, canonical_url, title, summary, body, author,
                          published, language, extract_error, fetched_at)
    SELECT id, feed_id, guid, url, canonical_url, title, summary, body, author, published,
           language, extract_error, fetched_at
    FROM input ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING id, feed_id
),
ins_alerts AS (
    INSERT INTO alerts (id, watchlist, article_id, created_at, payload)
    SELECT x.id, x.watchlist, i.id, %(now)s, x.payload::jsonb
    FROM unnest(%(al_id)s::text[], %(al_watchlist)s::text[], %(al_ord)s::bigint[],
                %(al_payload)s::text[]) WITH ORDINALITY AS x(id, watchlist, art_ord, payload, n)
    JOIN input i ON i.ord = x.art_ord
    JOIN ins ON ins.id = i.id
    ORDER BY x.n
    ON CONFLICT DO NOTHING
    RETURNING id, article_id
),
ins_deliveries AS (
    INSERT INTO deliveries (alert_id, channel, next_attempt, created_at)
    SELECT d.alert_id, d.channel, d.next_attempt, %(now)s
    FROM unnest(%(d_alert)s::text[], %(d_ord)s::bigint[], %(d_channel)s::text[],
                %(d_next)s::timestamptz[]) AS d(alert_id, art_ord, channel, next_attempt)
    JOIN input i ON i.ord = d.art_ord
    JOIN ins_alerts a ON a.id = d.alert_id AND a.article_id = i.id
    ON CONFLICT DO NOTHING
    RETURNING 1
),
counted AS (
    UPDATE feeds f SET total_items = f.total_items + c.n
    FROM (SELECT feed_id, count(*) AS n FROM ins GROUP BY feed_id) c
    WHERE f.id = c.feed_id
    RETURNING 1
)
SELECT i.ord, i.id, ins.id IS NOT NULL AS stored,
       (SELECT array_agg(id) FROM ins_alerts) AS alerts
FROM input i LEFT JOIN ins ON ins.id = i.id
ORDER BY i.ord
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
                    p["d_next"].append(alert.not_before.get(channel) or now)
        rows = await self._fetch(_ADD_ARTICLES, p)
        results: list[int | None] = [int(r["id"]) if r["stored"] else None for r in rows]
        stored_alerts = set(rows[0]["alerts"] or []) if rows else set()
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
