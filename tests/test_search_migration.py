"""Databases that existed before search: the migration indexes the articles they hold, and the
index can be switched off for a benchmark and comes back (rebuilt) at the next open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from storage.base import FeedSpec, NewArticle
from storage.postgres import MIGRATIONS as PG_MIGRATIONS
from storage.postgres import PostgresStorage
from storage.sqlite import MIGRATIONS, SQLiteStorage, split_statements

FEED = "https://a.example.org/rss.xml"
OLD = (
    "INSERT INTO articles (feed_id, guid, title, summary, body, fetched_at) VALUES "
    "(1, 'g1', 'Wildfire near Lisbon', 'An evacuation order', 'Firefighters', "
    "'2024-01-03T10:00:00.000000Z')"
)


async def test_a_version_5_sqlite_database_gets_its_articles_indexed(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as conn:
        for migration in MIGRATIONS[:5]:
            for statement in split_statements(migration.sql):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 5")
        conn.execute(
            "INSERT INTO feeds (key, url, created_at) VALUES (?, ?, '2024-01-01T00:00:00.000000Z')",
            (FEED, FEED),
        )
        conn.execute(OLD)
    conn.close()
    store = SQLiteStorage(path)
    await store.open()
    try:
        assert [h.title for h in await store.search_articles("firefighters")] == [
            "Wildfire near Lisbon"
        ]
    finally:
        await store.close()


async def test_sqlite_index_off_for_a_benchmark_then_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "fw.db"
    off = SQLiteStorage(path, search_index=False)
    await off.open()
    try:
        feeds = await off.sync_feeds([FeedSpec(FEED)])
        await off.add_articles([NewArticle(feeds[FEED].id, "g", None, None, "Flood in Porto")])
        assert await off.search_articles("flood") == []  # not indexed
    finally:
        await off.close()
    reader = SQLiteStorage(path)
    await reader.open("readonly")  # a reader changes nothing
    try:
        assert await reader.search_articles("flood") == []
    finally:
        await reader.close()
    on = SQLiteStorage(path)
    await on.open()
    try:
        assert [h.title for h in await on.search_articles("flood")] == ["Flood in Porto"]
        await on.add_articles([NewArticle(feeds[FEED].id, "g2", None, None, "Flood again")])
        assert len(await on.search_articles("flood")) == 2
    finally:
        await on.close()


async def test_a_version_1_postgres_database_gets_its_articles_indexed(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(PG_MIGRATIONS[0].sql.encode())
            conn.execute("INSERT INTO feedwatch_schema (version) VALUES (1)")
            conn.execute(
                "INSERT INTO feeds (key, url, created_at) VALUES (%s, %s, now())", (FEED, FEED)
            )
            conn.execute(OLD.replace("'2024-01-03T10:00:00.000000Z'", "now()"))
    store = PostgresStorage(pg_url)
    await store.open()
    try:
        assert [h.title for h in await store.search_articles("firefighters")] == [
            "Wildfire near Lisbon"
        ]
    finally:
        await store.close()
