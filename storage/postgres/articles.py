"""Articles on PostgreSQL: dedup lookups, and a whole batch of articles with their alerts and
outbox rows stored by one statement (one round trip)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from storage.base import Article, ExtractFailures, NewAlert, NewArticle, StoryRow
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
                          published, language, extract_error, fetched_at, story_ref, story_id,
                          story_sig)
    SELECT (SELECT ids FROM ids)[u.ord], u.feed_id, u.guid, u.url, u.canonical_url, u.title,
           u.summary, u.body, u.author, u.published, u.language, u.extract_error, u.fetched_at,
           u.story_ref, u.story_id, u.story_sig
    FROM unnest(%(feed_id)s::bigint[], %(guid)s::text[], %(url)s::text[], %(canonical)s::text[],
                %(title)s::text[], %(summary)s::text[], %(body)s::text[], %(author)s::text[],
                %(published)s::timestamptz[], %(language)s::text[], %(extract_error)s::text[],
                %(fetched_at)s::timestamptz[], %(story_ref)s::bigint[], %(story_id)s::bigint[],
                %(story_sig)s::bytea[])
         WITH ORDINALITY AS u(feed_id, guid, url, canonical_url, title, summary, body, author,
                              published, language, extract_error, fetched_at, story_ref,
                              story_id, story_sig, ord)
    ORDER BY u.ord
    ON CONFLICT DO NOTHING
    RETURNING id, feed_id
),
ins_keys AS (
    INSERT INTO story_keys (key, story_ref, published)
    SELECT k.key, k.story_ref, k.published
    FROM unnest(%(k_key)s::bigint[], %(k_ref)s::bigint[], %(k_ord)s::int[],
                %(k_published)s::timestamptz[]) AS k(key, story_ref, art_ord, published)
    WHERE (SELECT ids FROM ids)[k.art_ord] IN (SELECT id FROM ins)
    ON CONFLICT DO NOTHING
    RETURNING 1
),
ins_alerts AS (
    INSERT INTO alerts (id, watchlist, article_id, created_at, payload, kind, story_alert_id)
    SELECT x.id, x.watchlist, x.article_id, (%(fetched_at)s::timestamptz[])[x.art_ord],
           x.payload::jsonb, x.kind, x.story_alert_id
    FROM (SELECT a.id, a.watchlist, (SELECT ids FROM ids)[a.art_ord] AS article_id, a.payload, a.n,
                 a.art_ord, a.kind, a.story_alert_id
          FROM unnest(%(al_id)s::text[], %(al_watchlist)s::text[], %(al_ord)s::int[],
                      %(al_payload)s::text[], %(al_kind)s::text[], %(al_story)s::text[])
               WITH ORDINALITY AS a(id, watchlist, art_ord, payload, kind, story_alert_id, n)) x
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
       (SELECT array_agg(id) FROM ins_alerts) AS alerts,
       (SELECT array_agg(article_id) FROM ins_alerts) AS alert_articles
"""

# A story's first alert whose id another copy stored first: its also_reported copy instead.
_FALLBACK_KEYS = (
    "id", "watchlist", "article_id", "created_at", "payload", "kind", "story",
    "d_alert", "d_channel", "d_next",
)  # fmt: skip
_ADD_FALLBACKS = """
WITH ins AS (
    INSERT INTO alerts (id, watchlist, article_id, created_at, payload, kind, story_alert_id)
    SELECT a.id, a.watchlist, a.article_id, a.created_at, a.payload::jsonb, a.kind, a.story
    FROM unnest(%(id)s::text[], %(watchlist)s::text[], %(article_id)s::bigint[],
                %(created_at)s::timestamptz[], %(payload)s::text[], %(kind)s::text[],
                %(story)s::text[]) AS a(id, watchlist, article_id, created_at, payload, kind, story)
    ON CONFLICT DO NOTHING
    RETURNING id, article_id, created_at
),
ins_deliveries AS (
    INSERT INTO deliveries (alert_id, channel, next_attempt, created_at)
    SELECT d.alert_id, d.channel, d.next_attempt, i.created_at
    FROM unnest(%(d_alert)s::text[], %(d_channel)s::text[], %(d_next)s::timestamptz[])
         AS d(alert_id, channel, next_attempt)
    JOIN ins i ON i.id = d.alert_id
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT array_agg(id) FROM ins) AS alerts,
       (SELECT array_agg(article_id) FROM ins) AS alert_articles
"""


def _alert_pairs(row: dict[str, Any]) -> set[tuple[str, int]]:
    """(alert id, article id) of the alerts a statement stored."""
    return set(zip(row["alerts"] or [], (int(a) for a in row["alert_articles"] or []), strict=True))


def _story_row(row: dict[str, Any]) -> StoryRow:
    published = t(row["published"])
    assert published is not None
    return StoryRow(int(row["story_ref"]), int(row["story_id"]), bytes(row["story_sig"]), published)


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
            "story_ref": [a.story_ref for a in articles],
            "story_id": [a.story_id for a in articles],
            "story_sig": [a.story_sig for a in articles],
            "k_key": [],
            "k_ref": [],
            "k_ord": [],
            "k_published": [],
            "al_kind": [],
            "al_story": [],
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
            if article.story_ref is not None:
                published = article.published or article.fetched_at or now
                for key in article.story_keys:
                    p["k_key"].append(key)
                    p["k_ref"].append(article.story_ref)
                    p["k_ord"].append(ord_)
                    p["k_published"].append(published)
            for alert in article.alerts:
                p["al_kind"].append(alert.kind)
                p["al_story"].append(alert.story_alert_id)
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
        if not any(a.if_exists is not None for article in articles for a in article.alerts):
            [row] = await self._fetch(_ADD_ARTICLES, p)
            return self._stored(articles, row, set())
        # A story alert another copy stored first becomes its copy, in the same transaction.
        async with self._tx() as conn:
            [row] = await self._rows(conn, _ADD_ARTICLES, p)
            stored_alerts = _alert_pairs(row)
            stored = set(row["stored"] or [])
            fallbacks: list[tuple[int, NewArticle, NewAlert]] = [
                (int(article_id), article, alert.if_exists)
                for article, article_id in zip(articles, row["ids"], strict=True)
                if article_id in stored
                for alert in article.alerts
                if alert.if_exists is not None and (alert.id, int(article_id)) not in stored_alerts
            ]
            if fallbacks:
                q: dict[str, list[Any]] = {k: [] for k in _FALLBACK_KEYS}
                for article_id, article, alert in fallbacks:
                    at = article.fetched_at or now
                    q["id"].append(alert.id)
                    q["watchlist"].append(alert.watchlist)
                    q["article_id"].append(article_id)
                    q["created_at"].append(at)
                    q["payload"].append(
                        json_text(dump_payload(alert.id, alert.payload), alert.payload)
                    )
                    q["kind"].append(alert.kind)
                    q["story"].append(alert.story_alert_id)
                    for channel in dict.fromkeys(alert.channels):
                        q["d_alert"].append(alert.id)
                        q["d_channel"].append(channel)
                        q["d_next"].append(alert.not_before.get(channel) or at)
                [extra] = await self._rows(conn, _ADD_FALLBACKS, q)
                stored_alerts |= _alert_pairs(extra)
        return self._stored(articles, row, stored_alerts)

    @staticmethod
    def _stored(
        articles: list[NewArticle], row: dict[str, Any], stored_alerts: set[tuple[str, int]]
    ) -> list[int | None]:
        """Ids of the stored articles; marks the alerts whose id existed (``NewAlert.taken``).

        An alert counts as stored by its id *and* article: two copies of one story in one write
        both carry the story's alert id, and only the first is stored under it.
        """
        stored = set(row["stored"] or [])
        results: list[int | None] = [int(i) if i in stored else None for i in row["ids"]]
        stored_alerts = stored_alerts | _alert_pairs(row)
        for article, article_id in zip(articles, results, strict=True):
            if article_id is None:
                continue
            for first_choice in article.alerts:
                alert: NewAlert | None = first_choice
                while alert is not None and (alert.id, article_id) not in stored_alerts:
                    alert.taken = True
                    if alert.if_exists is None:
                        log.warning(
                            "alert exists already alert=%s watchlist=%s article=%d",
                            alert.id,
                            alert.watchlist,
                            article_id,
                        )
                    alert = alert.if_exists
        return results

    # -- stories

    async def story_candidates(
        self, keys: list[int], since: datetime, until: datetime
    ) -> list[StoryRow]:
        if not keys:
            return []
        rows = await self._fetch(
            "SELECT a.story_ref, a.story_id, a.story_sig, k.published FROM ("
            "  SELECT DISTINCT story_ref, published FROM story_keys "
            "  WHERE key = ANY(%s::bigint[]) AND published BETWEEN %s AND %s"
            ") k JOIN articles a ON a.story_ref = k.story_ref WHERE a.story_sig IS NOT NULL",
            (keys, since, until),
        )
        return [_story_row(row) for row in rows]

    async def story_rows(self, since: datetime, limit: int = 500_000) -> list[StoryRow]:
        rows = await self._fetch(
            "SELECT story_ref, story_id, story_sig, COALESCE(published, fetched_at) AS published "
            "FROM articles WHERE story_sig IS NOT NULL AND fetched_at >= %s ORDER BY id LIMIT %s",
            (since, limit),
        )
        return [_story_row(row) for row in rows]

    async def existing_alerts(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = await self._fetch("SELECT id FROM alerts WHERE id = ANY(%s::text[])", (ids,))
        return {row["id"] for row in rows}

    async def last_story_alert(
        self, watchlist: str, story_id: int
    ) -> tuple[str, bytes | None, dict[str, Any]] | None:
        rows = await self._fetch(
            "SELECT al.id, a.story_sig, al.payload FROM alerts al "
            "JOIN articles a ON a.id = al.article_id "
            "WHERE al.watchlist = %s AND al.kind = 'match' AND a.story_id = %s "
            "ORDER BY al.created_at DESC, al.id DESC LIMIT 1",
            (watchlist, story_id),
        )
        if not rows:
            return None
        sig = rows[0]["story_sig"]
        return rows[0]["id"], bytes(sig) if sig is not None else None, rows[0]["payload"]

    async def prune_story_keys(self, before: datetime) -> int:
        async with self._conn() as conn:
            return await self._run(conn, "DELETE FROM story_keys WHERE published < %s", (before,))

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

    async def extract_failures(self, since: datetime) -> dict[int, ExtractFailures]:
        rows = await self._fetch(
            "SELECT DISTINCT ON (feed_id) feed_id, extract_error, fetched_at, "
            "count(*) OVER (PARTITION BY feed_id) AS n FROM articles "
            "WHERE fetched_at >= %s AND extract_error IS NOT NULL "
            "ORDER BY feed_id, fetched_at DESC, id DESC",
            (since,),
        )
        out: dict[int, ExtractFailures] = {}
        for row in rows:
            when = t(row["fetched_at"])
            assert when is not None
            fid = int(row["feed_id"])
            out[fid] = ExtractFailures(fid, int(row["n"]), str(row["extract_error"]), when)
        return out

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
