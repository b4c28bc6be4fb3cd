"""Search and the dashboard's reads: the same answers from SQLite FTS5 and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.base import FeedSpec, FeedUpdate, NewAlert, NewArticle, Storage, StorageError
from storage.search import QueryError

FEED_A = "https://a.example.org/rss.xml"
FEED_B = "https://b.example.org/atom.xml"
T0 = datetime(2024, 1, 3, 10, 0, tzinfo=UTC)

STORIES = [
    # (feed, title, summary, body, hours after T0, watchlist)
    ("a", "Wildfire near Lisbon", "Officials issued an evacuation order for three villages.",
     "Firefighters battled the wildfire through the night. The evacuation order stays.", 0, "fire"),
    ("a", "Harbour strike ends", "Dock workers return to the port of Lisbon.",
     "Shipping resumed on Tuesday after the strike.", 1, None),
    ("b", "Évacuation à Porto", "Les autorités ont ordonné l'évacuation du quartier.",
     "Un incendie de forêt menace Porto.", 2, "fire"),
    ("b", "School drill", "A fire drill at the school; no evacuation order was needed.",
     "Pupils practised leaving the building.", 3, None),
    ("b", "Пожар в Мюнхене", "МЮНХЕН: пожарные потушили пожар.", "", 4, None),
    ("a", "Football results", "The cup final ended 2-1.",
     "Fans celebrated; one mention of the order of play.", 5, None),
]  # fmt: skip


async def seed(store: Storage) -> dict[str, int]:
    feeds = await store.sync_feeds([FeedSpec(FEED_A, "Alpha"), FeedSpec(FEED_B, "Beta")])
    fid = {"a": feeds[FEED_A].id, "b": feeds[FEED_B].id}
    articles = []
    for i, (feed, title, summary, body, hours, wl) in enumerate(STORIES):
        alerts = [NewAlert(f"al-{i}", wl, {"id": f"al-{i}"}, ["hook"])] if wl else []
        articles.append(
            NewArticle(
                feed_id=fid[feed], guid=f"g{i}", url=f"https://news.example.org/{i}",
                canonical_url=f"https://news.example.org/{i}", title=title, summary=summary,
                body=body, fetched_at=T0 + timedelta(hours=hours), alerts=alerts,
            )
        )  # fmt: skip
    ids = await store.add_articles(articles)
    return {STORIES[i][1]: aid for i, aid in enumerate(ids) if aid is not None}


async def titles(store: Storage, query: str | None, **kw: object) -> list[str]:
    return [h.title for h in await store.search_articles(query, **kw)]  # type: ignore[arg-type]


async def test_words_phrases_prefixes_and_operators(store: Storage) -> None:
    await seed(store)
    assert set(await titles(store, "lisbon")) == {"Wildfire near Lisbon", "Harbour strike ends"}
    assert set(await titles(store, '"evacuation order"')) == {
        "Wildfire near Lisbon",
        "School drill",
    }
    # The words, not the phrase: "order" and "evacuation" apart also match.
    assert "Football results" not in await titles(store, "evacuation order")
    assert set(await titles(store, "evacuat*")) == {
        "Wildfire near Lisbon",
        "Évacuation à Porto",
        "School drill",
    }
    assert await titles(store, '"evacuation order" NOT drill') == ["Wildfire near Lisbon"]
    assert await titles(store, '"evacuation order" -drill') == ["Wildfire near Lisbon"]
    assert set(await titles(store, "porto OR strike")) == {
        "Évacuation à Porto",
        "Harbour strike ends",
    }
    assert set(await titles(store, "(porto OR lisbon) AND evacuat*")) == {
        "Wildfire near Lisbon",
        "Évacuation à Porto",
    }
    assert await titles(store, "lisbon strike") == ["Harbour strike ends"]  # AND implied
    assert await titles(store, "nothinglikethis") == []


async def test_case_and_accents_are_ignored(store: Storage) -> None:
    await seed(store)
    assert "Évacuation à Porto" in await titles(store, "EVACUATION")
    assert "Wildfire near Lisbon" in await titles(store, "évacuation")
    assert await titles(store, "мюнхен") == ["Пожар в Мюнхене"]  # Cyrillic, upper in the text


async def test_title_ranks_first_and_snippets_mark_the_terms(store: Storage) -> None:
    await seed(store)
    hits = await store.search_articles("wildfire")
    assert [h.title for h in hits] == ["Wildfire near Lisbon"]
    hit = hits[0]
    assert hit.title_marks == ((0, 8),) and hit.rank > 0
    # Strike: in one title, and in another's body only; the title match ranks first.
    hits = await store.search_articles("shipping OR strike")
    assert hits[0].title == "Harbour strike ends"
    hits = await store.search_articles('"evacuation order"')
    for h in hits:
        assert h.marks, h
        for a, b in h.marks:
            assert h.snippet[a:b].lower() == "evacuation order"
    porto = (await store.search_articles("evacuation porto"))[0]
    assert [porto.snippet[a:b] for a, b in porto.marks] == ["évacuation"]
    assert porto.feed_name == "Beta" and porto.feed_key == FEED_B
    assert porto.watchlists == ("fire",)


async def test_filters_pagination_and_listing_without_a_query(store: Storage) -> None:
    await seed(store)
    assert set(await titles(store, "evacuat*", feed_keys=[FEED_B])) == {
        "Évacuation à Porto",
        "School drill",
    }
    assert await titles(store, "evacuat*", feed_keys=[]) == []
    assert set(await titles(store, "evacuat*", watchlist="fire")) == {
        "Wildfire near Lisbon",
        "Évacuation à Porto",
    }
    assert await titles(store, "evacuat*", since=T0 + timedelta(hours=2, minutes=30)) == [
        "School drill"
    ]
    newest = await titles(store, None)
    assert newest == [s[1] for s in reversed(STORIES)]
    assert await titles(store, "  ", limit=2, offset=1) == newest[1:3]
    assert await titles(store, None, feed_keys=[FEED_A], limit=2) == [
        "Football results",
        "Harbour strike ends",
    ]
    page1 = await titles(store, "evacuat* OR lisbon", limit=2)
    page2 = await titles(store, "evacuat* OR lisbon", limit=2, offset=2)
    assert len(page1) == 2 and len(page2) == 2 and not set(page1) & set(page2)


async def test_the_index_follows_new_and_pruned_articles(store: Storage) -> None:
    await seed(store)
    assert await titles(store, "firefighters") == ["Wildfire near Lisbon"]
    assert await store.prune_text(T0 + timedelta(minutes=30)) == 1
    assert await titles(store, "firefighters") == []  # its body is gone
    assert await titles(store, "wildfire") == ["Wildfire near Lisbon"]  # its title stays
    hit = (await store.search_articles("wildfire"))[0]
    assert hit.snippet == ""
    feeds = await store.sync_feeds([FeedSpec(FEED_A)])
    await store.add_articles(
        [NewArticle(feeds[FEED_A].id, "new", None, None, "Flood warning", "Rivers rise")]
    )
    assert await titles(store, "rivers") == ["Flood warning"]


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ('"evacuation order', "closing quote"),
        ("(lisbon OR porto", "')'"),
        ("lisbon)", "'('"),
        ("NOT drill", "only exclude"),
        ("-drill", "only exclude"),
        ("lisbon OR", "OR needs"),
        ("AND lisbon", "AND needs"),
        ("lisbon OR NOT porto", "NOT cannot"),
        ("*", "'*'"),
        ("ev*cuation", "'*'"),
        ('""', "empty phrase"),
        ("()", "empty parentheses"),
        ("!!! ...", "no words"),
        ("x" * 501, "too long"),
        (" ".join(f"w{i}" for i in range(40)), "too many terms"),
        ("(" * 12 + "x" + ")" * 12, "nested"),
    ],
)
async def test_malformed_queries_get_a_clear_error_never_a_database_error(
    store: Storage, query: str, why: str
) -> None:
    await seed(store)
    with pytest.raises(QueryError) as info:
        await store.search_articles(query)
    assert why in str(info.value)
    assert not isinstance(info.value, StorageError)


@pytest.mark.parametrize(
    "query",
    [
        "title:lisbon",
        "NEAR(lisbon porto)",
        "lisbon'; DROP TABLE articles; --",
        "^lisbon",
        "lisbon + porto",
        "{title body}: lisbon",
        "%_\\ lisbon",
        "lisbon & porto | !x <-> y:*",
    ],
)
async def test_query_syntax_of_either_engine_is_only_words(store: Storage, query: str) -> None:
    await seed(store)
    hits = await store.search_articles(query)  # never a database error
    assert all(isinstance(h.title, str) for h in hits)
    assert len(await store.search_articles(None, limit=100)) == len(STORIES)


async def test_failed_polls_are_kept_per_feed_newest_first_and_bounded(store: Storage) -> None:
    feeds = await store.sync_feeds([FeedSpec(FEED_A), FeedSpec(FEED_B)])
    a, b = feeds[FEED_A].id, feeds[FEED_B].id
    nxt = T0 + timedelta(days=1)
    await store.update_feed(a, FeedUpdate(T0, nxt, http_status=200))
    await store.update_feed(a, FeedUpdate(T0 + timedelta(minutes=1), nxt, 503, ok=False,
                                          error="HTTP 503 Service Unavailable"))  # fmt: skip
    await store.update_feeds(
        [
            (a, FeedUpdate(T0 + timedelta(minutes=2), nxt, None, ok=False, error="timeout")),
            (b, FeedUpdate(T0 + timedelta(minutes=2), nxt, 200)),
        ]
    )
    events = await store.feed_events(a)
    assert [(e.http_status, e.error) for e in events] == [
        (None, "timeout"),
        (503, "HTTP 503 Service Unavailable"),
    ]
    assert events[0].at == T0 + timedelta(minutes=2) and events[0].feed_id == a
    assert await store.feed_events(b) == []
    for i in range(60):
        await store.update_feeds(
            [(b, FeedUpdate(T0 + timedelta(hours=1, seconds=i), nxt, 500, ok=False, error=f"e{i}"))]
        )
    kept = await store.feed_events(b, limit=1000)
    assert 45 <= len(kept) <= 51 and kept[0].error == "e59"
    assert len(await store.feed_events(b, limit=5)) == 5
    assert len(await store.feed_events(a)) == 2  # another feed's history is not trimmed


async def test_activity_per_hour_and_counts(store: Storage) -> None:
    ids = await seed(store)
    feeds = await store.sync_feeds([FeedSpec(FEED_A)])
    a = feeds[FEED_A].id
    nxt = T0 + timedelta(days=1)
    await store.update_feeds(
        [
            (a, FeedUpdate(T0 + timedelta(minutes=5), nxt, 200)),
            (a, FeedUpdate(T0 + timedelta(minutes=50), nxt, 500, ok=False, error="x")),
        ]
    )
    await store.update_feed(a, FeedUpdate(T0 + timedelta(hours=2, minutes=1), nxt, 200))
    hours = await store.activity(T0 - timedelta(minutes=30), T0 + timedelta(hours=4))
    assert [h.hour for h in hours] == [
        T0 - timedelta(hours=1) + timedelta(hours=i) for i in range(5)
    ]
    by_hour = {h.hour: h for h in hours}
    assert (by_hour[T0].polls, by_hour[T0].poll_errors) == (2, 1)
    assert by_hour[T0 + timedelta(hours=2)].polls == 1
    assert [h.new_articles for h in hours] == [0, 1, 1, 1, 1]
    assert [h.alerts for h in hours] == [0, 1, 0, 1, 0]  # alerts carry their article's time
    assert await store.alert_counts() == {"fire": 2}
    assert await store.alert_counts(T0 + timedelta(hours=1)) == {"fire": 1}
    assert await store.delivery_counts() == {
        "pending": 2,
        "in_flight": 0,
        "delivered": 0,
        "failed": 0,
    }
    fire = await store.list_alerts(watchlist="fire")
    assert [r.id for r in fire] == ["al-2", "al-0"]
    assert [r.id for r in await store.list_alerts(watchlist="fire", offset=1)] == ["al-0"]
    assert await store.list_alerts(watchlist="nope") == []
    by_article = await store.list_alerts(article_id=ids["Évacuation à Porto"])
    assert [r.id for r in by_article] == ["al-2"]
