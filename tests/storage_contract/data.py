"""Test data for the storage contract."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.base import AlertRecord, Delivery, FeedSpec, NewAlert, NewArticle, Storage

FEED_A = "https://a.example.org/rss.xml"
FEED_B = "https://b.example.org/atom.xml"


async def feed_ids(store: Storage) -> tuple[int, int]:
    feeds = await store.sync_feeds([FeedSpec(FEED_A, "A"), FeedSpec(FEED_B)])
    return feeds[FEED_A].id, feeds[FEED_B].id


def article(
    feed_id: int,
    n: int,
    *,
    guid: str | None = "same",
    canonical: str | None = "same",
    channels: tuple[str, ...] = (),
    alert_id: str | None = None,
    fetched_at: datetime | None = None,
    not_before: dict[str, datetime] | None = None,
) -> NewArticle:
    """An article numbered ``n``; guid/canonical default to values derived from ``n``."""
    alerts = []
    if channels:
        alerts.append(
            NewAlert(
                id=alert_id or f"alert-{feed_id}-{n}",
                watchlist="wildfire",
                payload={"type": "match", "id": alert_id or f"alert-{feed_id}-{n}", "n": n},
                channels=list(channels),
                not_before=not_before or {},
            )
        )
    return NewArticle(
        feed_id=feed_id,
        guid=f"guid-{n}" if guid == "same" else guid,
        url=f"https://news.example.org/{n}?utm_source=x",
        canonical_url=f"https://news.example.org/{n}" if canonical == "same" else canonical,
        title=f"Title {n} – évacuation",
        summary="summary",
        body="body text",
        published=datetime(2024, 1, 3, 10, 0, tzinfo=UTC),
        fetched_at=fetched_at,
        alerts=alerts,
    )


async def seed(store: Storage, n: int, channels: tuple[str, ...] = ("hook",)) -> list[str]:
    """``n`` articles in one feed, each with one alert ``al-<i>`` on ``channels``."""
    feeds = await store.sync_feeds([FeedSpec(FEED_A)])
    feed_id = feeds[FEED_A].id
    ids = [f"al-{i}" for i in range(n)]
    await store.add_articles(
        [
            NewArticle(
                feed_id=feed_id,
                guid=f"g{i}",
                url=f"https://news.example.org/{i}",
                canonical_url=f"https://news.example.org/{i}",
                title=f"Story {i}",
                alerts=[NewAlert(ids[i], "wl", {"type": "match", "id": ids[i]}, list(channels))],
            )
            for i in range(n)
        ]
    )
    return ids


def by_id(records: list[AlertRecord]) -> dict[tuple[str, str], Delivery]:
    return {(r.id, d.channel): d for r in records for d in r.deliveries}


async def all_deliveries(store: Storage) -> list[Delivery]:
    return [d for r in await store.list_alerts(limit=1_000_000) for d in r.deliveries]
