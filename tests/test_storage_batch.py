"""Batched storage writes: update_feeds (many poll outcomes, one transaction) and add_articles
across feeds (one executemany, ids matched back to their articles) on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.base import FeedSpec, FeedUpdate, NewAlert, NewArticle, StorageError
from storage.sqlite import SQLiteStorage

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def _open(tmp_path: Path, n: int) -> tuple[SQLiteStorage, list[int]]:
    st = SQLiteStorage(tmp_path / "fw.db")
    await st.open()
    states = await st.sync_feeds([FeedSpec(key=f"http://x.test/{i}.xml") for i in range(n)])
    return st, [states[f"http://x.test/{i}.xml"].id for i in range(n)]


def _art(feed_id: int, guid: str | None, url: str | None, **kw: object) -> NewArticle:
    return NewArticle(
        feed_id=feed_id, guid=guid, url=url, canonical_url=url, title=f"t {guid}", **kw
    )  # type: ignore[arg-type]


async def test_update_feeds_applies_each_outcome_like_update_feed(tmp_path: Path) -> None:
    st, ids = await _open(tmp_path, 3)
    try:
        later = NOW + timedelta(hours=1)
        await st.update_feeds(
            [
                (ids[0], FeedUpdate(last_poll=NOW, next_poll=later, http_status=304)),
                (ids[1], FeedUpdate(last_poll=NOW, next_poll=later, http_status=200,
                                    etag='"v2"', body_hash="abc", title="Feed one")),
                (ids[2], FeedUpdate(last_poll=NOW, next_poll=later, ok=False, error="boom",
                                    retry_after=later)),
            ]
        )  # fmt: skip
        feeds = {f.id: f for f in await st.list_feeds()}
        assert feeds[ids[0]].http_status == 304 and feeds[ids[0]].etag is None
        assert feeds[ids[0]].last_success == NOW and feeds[ids[0]].next_poll == later
        assert feeds[ids[1]].etag == '"v2"' and feeds[ids[1]].body_hash == "abc"
        assert feeds[ids[1]].title == "Feed one"
        assert feeds[ids[2]].error_count == 1 and feeds[ids[2]].last_error == "boom"
        assert feeds[ids[2]].retry_after == later and feeds[ids[2]].last_success is None
        # A second failure counts up; a success in the same kind of batch resets.
        await st.update_feeds(
            [(ids[2], FeedUpdate(last_poll=later, next_poll=later, ok=False, error="again"))]
        )
        assert (await st.get_feed("http://x.test/2.xml")).error_count == 2  # type: ignore[union-attr]
        await st.update_feeds([(ids[2], FeedUpdate(last_poll=later, next_poll=later))])
        assert (await st.get_feed("http://x.test/2.xml")).error_count == 0  # type: ignore[union-attr]
    finally:
        await st.close()


async def test_update_feeds_with_an_unknown_id_changes_nothing(tmp_path: Path) -> None:
    st, ids = await _open(tmp_path, 1)
    try:
        with pytest.raises(StorageError, match="1 of 2 feed updates name no feed"):
            await st.update_feeds(
                [
                    (ids[0], FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200)),
                    (99999, FeedUpdate(last_poll=NOW, next_poll=NOW, http_status=200)),
                ]
            )
        feed = await st.get_feed("http://x.test/0.xml")
        assert feed is not None and feed.http_status is None and feed.last_poll is None
    finally:
        await st.close()


async def test_add_articles_across_feeds_returns_ids_in_order_and_none_for_duplicates(
    tmp_path: Path,
) -> None:
    st, ids = await _open(tmp_path, 2)
    try:
        first = await st.add_articles([_art(ids[0], "a", "http://x.test/a")])
        assert first[0] is not None
        alert = NewAlert(id="msg_1", watchlist="w", payload={"id": "msg_1"}, channels=["c"])
        batch = [
            _art(ids[0], "a", "http://x.test/a"),  # stored before
            _art(ids[1], "b", "http://x.test/b", alerts=[alert]),
            _art(ids[0], "c", "http://x.test/b"),  # same canonical URL earlier in this batch
            _art(ids[1], None, None),  # no identity at all: always new
            _art(ids[1], "b", "http://x.test/other"),  # same GUID in the same feed
            _art(ids[0], "b", "http://x.test/d"),  # same GUID, other feed: new
        ]
        got = await st.add_articles(batch)
        assert got[0] is None and got[2] is None and got[4] is None
        new = [got[1], got[3], got[5]]
        assert all(isinstance(i, int) for i in new) and len(set(new)) == 3
        for i in (1, 3, 5):
            art = await st.get_article(got[i])  # type: ignore[arg-type]
            assert art is not None and art.guid == batch[i].guid and art.feed_id == batch[i].feed_id
        alerts = await st.list_alerts()
        assert [a.id for a in alerts] == ["msg_1"] and alerts[0].article_id == got[1]
        feeds = {f.id: f for f in await st.list_feeds()}
        assert feeds[ids[0]].total_items == 2 and feeds[ids[1]].total_items == 2
    finally:
        await st.close()
