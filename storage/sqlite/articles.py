"""Articles on SQLite: dedup lookups, storing articles with their alerts and outbox rows."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from storage.base import Article, ExtractFailures, NewAlert, NewArticle, StoryRow
from storage.rows import ARTICLE_COLUMNS, article_from_row, dump_payload, utcnow
from storage.sqlite.connection import SQLiteBase
from storage.sqlite.convert import from_db_time, json_list, opt_time, to_db_time
from storage.sqlite.search import INDEX_FROM_ID

log = logging.getLogger("storage.sqlite")


def _story_row(row: Any) -> StoryRow:
    published = from_db_time(row[3])
    assert published is not None
    return StoryRow(int(row[0]), int(row[1]), bytes(row[2]), published)


class SQLiteArticles(SQLiteBase):
    async def known_items(
        self, feed_id: int, guids: list[str], canonical_urls: list[str]
    ) -> tuple[set[str], set[str]]:
        """Which GUIDs (in this feed) and canonical URLs (anywhere) are already stored."""
        known_guids: set[str] = set()
        known_urls: set[str] = set()
        async with self._read() as db:
            if guids:
                rows = await db.execute_fetchall(
                    "SELECT guid FROM articles WHERE feed_id = ? "
                    "AND guid IN (SELECT value FROM json_each(?))",
                    (feed_id, json_list(guids)),
                )
                known_guids = {row[0] for row in rows}
            if canonical_urls:
                rows = await db.execute_fetchall(
                    "SELECT canonical_url FROM articles "
                    "WHERE canonical_url IN (SELECT value FROM json_each(?))",
                    (json_list(canonical_urls),),
                )
                known_urls = {row[0] for row in rows}
        return known_guids, known_urls

    async def add_articles(self, articles: list[NewArticle]) -> list[int | None]:
        """Store articles with their alerts and outbox rows in one transaction per call.

        Ids are handed out under the write lock, above the current maximum, and given to the
        rows explicitly: one ``executemany`` inserts them all (``ON CONFLICT DO NOTHING`` drops
        the duplicates), and one query tells which ids now exist. Alerts are written once (an
        existing alert id is left alone, with no new outbox rows), so a 2xx can never be
        repeated through here. Any error rolls the whole call back and raises ``StorageError``.
        """
        if not articles:
            return []
        now_text = to_db_time(utcnow())
        payloads = [
            [dump_payload(alert.id, alert.payload) for alert in article.alerts]
            for article in articles
        ]
        results: list[int | None] = []
        per_feed: dict[int, int] = {}
        async with self._write() as db:
            top = await db.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM articles")
            first = int(next(iter(top))[0]) + 1
            await db.executemany(
                "INSERT INTO articles (id, feed_id, guid, url, canonical_url, title, summary, "
                "body, author, published, language, extract_error, fetched_at, story_ref, "
                "story_id, story_sig) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (
                        first + i,
                        a.feed_id,
                        a.guid,
                        a.url,
                        a.canonical_url,
                        a.title,
                        a.summary,
                        a.body,
                        a.author,
                        opt_time(a.published),
                        a.language,
                        a.extract_error,
                        opt_time(a.fetched_at) or now_text,
                        a.story_ref,
                        a.story_id,
                        a.story_sig,
                    )
                    for i, a in enumerate(articles)
                ],
            )
            stored = {
                int(row[0])
                for row in await db.execute_fetchall(
                    "SELECT id FROM articles WHERE id >= ?", (first,)
                )
            }
            results = [first + i if first + i in stored else None for i in range(len(articles))]
            if stored and self._search_index:
                await db.execute(INDEX_FROM_ID, (first,))
            outbox: list[tuple[str, str, str, str]] = []
            keys: list[tuple[int, int, str]] = []
            for article, alert_payloads, article_id in zip(
                articles, payloads, results, strict=True
            ):
                if article_id is None:
                    continue
                per_feed[article.feed_id] = per_feed.get(article.feed_id, 0) + 1
                # Alerts carry the caller's time (its clock), not the database's.
                at = opt_time(article.fetched_at) or now_text
                if article.story_ref is not None and article.story_keys:
                    published = opt_time(article.published or article.fetched_at) or now_text
                    keys.extend((k, article.story_ref, published) for k in article.story_keys)
                for first_choice, payload in zip(article.alerts, alert_payloads, strict=True):
                    alert: NewAlert | None = first_choice
                    while alert is not None:
                        alert_row = list(
                            await db.execute_fetchall(
                                "INSERT INTO alerts (id, watchlist, article_id, created_at, "
                                "payload, kind, story_alert_id) VALUES (?, ?, ?, ?, ?, ?, ?) "
                                "ON CONFLICT DO NOTHING RETURNING id",
                                (
                                    alert.id,
                                    alert.watchlist,
                                    article_id,
                                    at,
                                    payload,
                                    alert.kind,
                                    alert.story_alert_id,
                                ),
                            )
                        )
                        if alert_row:
                            for channel in dict.fromkeys(alert.channels):
                                not_before = alert.not_before.get(channel)
                                outbox.append((alert.id, channel, opt_time(not_before) or at, at))
                            break
                        if alert.if_exists is None:
                            log.warning(
                                "alert exists already alert=%s watchlist=%s article=%d",
                                alert.id,
                                alert.watchlist,
                                article_id,
                            )
                        alert.taken = True
                        alert = alert.if_exists
                        if alert is not None:
                            payload = dump_payload(alert.id, alert.payload)
            if outbox:
                await db.executemany(
                    "INSERT INTO deliveries (alert_id, channel, next_attempt, created_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    outbox,
                )
            if keys:
                await db.executemany(
                    "INSERT INTO story_keys (key, story_ref, published) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    keys,
                )
            if per_feed:
                await db.executemany(
                    "UPDATE feeds SET total_items = total_items + ? WHERE id = ?",
                    [(count, feed_id) for feed_id, count in per_feed.items()],
                )
        return results

    # -- stories

    async def story_candidates(
        self, keys: list[int], since: datetime, until: datetime
    ) -> list[StoryRow]:
        if not keys:
            return []
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT a.story_ref, a.story_id, a.story_sig, k.published FROM ("
                "  SELECT DISTINCT story_ref, published FROM story_keys "
                "  WHERE key IN (SELECT value FROM json_each(?)) AND published BETWEEN ? AND ?"
                ") k JOIN articles a ON a.story_ref = k.story_ref "
                "WHERE a.story_sig IS NOT NULL",
                (json_list(keys), to_db_time(since), to_db_time(until)),
            )
        return [_story_row(row) for row in rows]

    async def story_rows(self, since: datetime, limit: int = 500_000) -> list[StoryRow]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT story_ref, story_id, story_sig, COALESCE(published, fetched_at) AS "
                "published FROM articles WHERE story_sig IS NOT NULL AND fetched_at >= ? "
                "ORDER BY id LIMIT ?",
                (to_db_time(since), limit),
            )
        return [_story_row(row) for row in rows]

    async def existing_alerts(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT id FROM alerts WHERE id IN (SELECT value FROM json_each(?))",
                (json_list(ids),),
            )
        return {row[0] for row in rows}

    async def last_story_alert(
        self, watchlist: str, story_id: int
    ) -> tuple[str, bytes | None, dict[str, Any]] | None:
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT al.id, a.story_sig, al.payload FROM alerts al "
                    "JOIN articles a ON a.id = al.article_id "
                    "WHERE al.watchlist = ? AND al.kind = 'match' AND a.story_id = ? "
                    "ORDER BY al.created_at DESC, al.id DESC LIMIT 1",
                    (watchlist, story_id),
                )
            )
        if not rows:
            return None
        return rows[0][0], rows[0][1], json.loads(rows[0][2])

    async def prune_story_keys(self, before: datetime) -> int:
        async with self._write() as db:
            cur = await db.execute(
                "DELETE FROM story_keys WHERE published < ?", (to_db_time(before),)
            )
            return max(cur.rowcount, 0)

    async def get_article(self, article_id: int) -> Article | None:
        async with self._read() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {ARTICLE_COLUMNS} FROM articles a "
                    "JOIN feeds f ON f.id = a.feed_id WHERE a.id = ?",
                    (article_id,),
                )
            )
        return article_from_row(rows[0], from_db_time) if rows else None

    async def articles_since(self, since: datetime, limit: int = 10000) -> list[Article]:
        """Articles stored (fetched) at or after ``since``, newest first, at most ``limit``."""
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT {ARTICLE_COLUMNS} FROM articles a JOIN feeds f ON f.id = a.feed_id "
                "WHERE a.fetched_at >= ? ORDER BY a.fetched_at DESC, a.id DESC LIMIT ?",
                (to_db_time(since), limit),
            )
        return [article_from_row(row, from_db_time) for row in rows]

    async def extract_failures(self, since: datetime) -> dict[int, ExtractFailures]:
        async with self._read() as db:
            # SQLite takes the bare columns from the row that gives max(fetched_at).
            rows = await db.execute_fetchall(
                "SELECT feed_id, count(*), extract_error, max(fetched_at) FROM articles "
                "WHERE fetched_at >= ? AND extract_error IS NOT NULL GROUP BY feed_id",
                (to_db_time(since),),
            )
        out: dict[int, ExtractFailures] = {}
        for feed_id, count, error, at in rows:
            when = from_db_time(at)
            assert when is not None
            out[int(feed_id)] = ExtractFailures(int(feed_id), int(count), str(error), when)
        return out

    async def prune_text(self, before: datetime, batch: int = 5000) -> int:
        """Drop the stored text (body, summary) of articles fetched before ``before``.

        The rows themselves stay: their GUIDs and canonical URLs are what keeps an old story
        that reappears in a feed from alerting twice. Works in small transactions so the
        daemon's writers are never blocked for long. Returns the number of articles pruned.
        """
        cutoff = to_db_time(before)
        total = 0
        while True:
            async with self._write() as db:
                cur = await db.execute(
                    "UPDATE articles SET body = '', summary = '' WHERE id IN ("
                    "SELECT id FROM articles WHERE fetched_at < ? AND (body != '' OR summary != '') "
                    "LIMIT ?)",
                    (cutoff, batch),
                )
                n = cur.rowcount
            total += n
            if n < batch:
                return total
            await asyncio.sleep(0)
