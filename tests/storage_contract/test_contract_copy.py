"""copy_storage: everything moves, ids kept, counts verified; a full destination is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.base import DeliveryOutcome, FeedUpdate, Storage
from storage.copy import CopyError, copy_storage
from storage.sqlite import SQLiteStorage
from tests.storage_contract.data import FEED_A, article, by_id, feed_ids

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


async def fill(st: Storage) -> None:
    a, b = await feed_ids(st)
    await st.update_feed(
        a, FeedUpdate(NOW, NOW + timedelta(minutes=15), http_status=200, etag='"e"', interval=60.0)
    )
    await st.add_articles(
        [article(a if n % 2 else b, n, channels=("hook", "mail"), alert_id=f"al-{n}")
         for n in range(25)]
    )  # fmt: skip
    claimed = await st.claim_deliveries("hook", datetime.now(UTC) + timedelta(seconds=1), 10, 60)
    await st.record_outcomes(
        [DeliveryOutcome(d.alert_id, "hook", "delivered", NOW, status=200) for d in claimed[:5]]
        + [DeliveryOutcome(claimed[5].alert_id, "hook", "failed", NOW, 410, "gone")]
    )


async def same_data(x: Storage, y: Storage) -> None:
    assert [vars_(f) for f in await x.list_feeds()] == [vars_(f) for f in await y.list_feeds()]
    ax = {r.id: r for r in await x.list_alerts(limit=10_000)}
    ay = {r.id: r for r in await y.list_alerts(limit=10_000)}
    assert ax == ay
    assert by_id(list(ax.values())) == by_id(list(ay.values()))
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert await x.articles_since(since) == await y.articles_since(since)
    # The copy is searchable at once (the index follows imported and replaced rows).
    found = [h.article_id for h in await x.search_articles("evacuation", limit=100)]
    assert len(found) == 25
    assert sorted(found) == sorted(
        h.article_id for h in await y.search_articles("evacuation", limit=100)
    )


def vars_(obj: object) -> dict[str, object]:
    return {k: getattr(obj, k) for k in obj.__slots__}  # type: ignore[attr-defined]


async def test_copy_from_sqlite_preserves_everything(store: Storage, tmp_path: Path) -> None:
    src = SQLiteStorage(tmp_path / "source.db")
    await src.open("daemon")
    try:
        await fill(src)
        seen: list[tuple[str, int, int]] = []
        report = await copy_storage(src, store, batch=7, progress=lambda *a: seen.append(a))
        assert report.ok and report.counts["articles"] == (25, 25)
        assert report.counts["deliveries"] == (50, 50)
        assert ("articles", 25, 25) in seen and ("feeds", 0, 2) in seen
        await same_data(src, store)
        # The copy knows what was seen and sent: nothing new, nothing re-alerted, ids go on.
        a = (await store.get_feed(FEED_A)).id  # type: ignore[union-attr]
        assert await store.add_articles([article(a, 3, channels=("hook",))]) == [None]
        [new_id] = await store.add_articles([article(a, 100)])
        assert new_id is not None and new_id > max(r.article_id for r in await store.list_alerts())
        # Refused when the destination is not empty; replaced on request.
        with pytest.raises(CopyError, match="not empty"):
            await copy_storage(src, store)
        again = await copy_storage(src, store, replace=True)
        assert again.ok
        await same_data(src, store)
    finally:
        await src.close()


async def test_copy_into_sqlite(store: Storage, tmp_path: Path) -> None:
    await fill(store)
    dst = SQLiteStorage(tmp_path / "copy.db")
    await dst.open()
    try:
        report = await copy_storage(store, dst)
        assert report.ok and report.summary().startswith("feeds 2, articles 25")
        await same_data(store, dst)
    finally:
        await dst.close()
