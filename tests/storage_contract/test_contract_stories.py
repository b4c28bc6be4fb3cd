"""Stories in storage: signatures and LSH keys stored with articles, candidates found by key
within a window, alerts of a story and their copies (``also_reported``) listed together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.base import NewAlert, NewArticle, Storage
from tests.storage_contract.data import feed_ids

T0 = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)
SIG = bytes(range(256)) * 2  # storage keeps the bytes as they are


def story_article(
    feed_id: int, n: int, ref: int, story: int, keys: list[int], published: datetime, alerts=()
) -> NewArticle:
    return NewArticle(
        feed_id=feed_id,
        guid=f"g{n}",
        url=f"https://news.example.org/{n}",
        canonical_url=f"https://news.example.org/{n}",
        title=f"Story {n}",
        published=published,
        fetched_at=published,
        story_ref=ref,
        story_id=story,
        story_sig=SIG + bytes([n]),
        story_keys=keys,
        alerts=list(alerts),
    )


async def test_candidates_share_a_key_within_the_window(store: Storage) -> None:
    a, b = await feed_ids(store)
    big = 2**55 + 7  # keys and refs are 56-bit
    await store.add_articles(
        [
            story_article(a, 1, 11, 11, [1, 2, big], T0),
            story_article(b, 2, 22, 11, [2, 3], T0 + timedelta(hours=1)),
            story_article(a, 3, 33, 33, [4], T0 - timedelta(days=5)),
            NewArticle(feed_id=a, guid="plain", url=None, canonical_url=None, title="no story"),
        ]
    )
    since, until = T0 - timedelta(hours=48), T0 + timedelta(hours=48)
    found = await store.story_candidates([2, 4, 99], since, until)
    assert sorted((r.story_ref, r.story_id) for r in found) == [(11, 11), (22, 11)]
    assert {r.signature for r in found} == {SIG + bytes([1]), SIG + bytes([2])}
    assert [r.story_ref for r in await store.story_candidates([big], since, until)] == [11]
    assert await store.story_candidates([], since, until) == []
    rows = await store.story_rows(T0 - timedelta(days=30))
    assert sorted(r.story_ref for r in rows) == [11, 22, 33]
    assert await store.prune_story_keys(T0 - timedelta(days=1)) == 1  # the 5-day-old one
    assert await store.story_candidates([4], T0 - timedelta(days=9), until) == []


async def test_a_story_alert_with_its_copies(store: Storage) -> None:
    a, b = await feed_ids(store)

    def alert(aid: str, kind: str = "match", parent: str | None = None) -> NewAlert:
        payload = (
            {"type": kind, "id": aid, "alert_id": parent} if parent else {"type": kind, "id": aid}
        )
        return NewAlert(aid, "fires", payload, ["hook"], kind=kind, story_alert_id=parent)  # type: ignore[arg-type]

    await store.add_articles([story_article(a, 1, 11, 11, [1], T0, [alert("msg_s")])])
    await store.add_articles(
        [
            story_article(b, 2, 22, 11, [1], T0 + timedelta(minutes=5),
                          [alert("msg_c1", "also_reported", "msg_s")]),
            story_article(b, 3, 33, 11, [1], T0 + timedelta(minutes=9),
                          [alert("msg_c2", "also_reported", "msg_s")]),
        ]
    )  # fmt: skip
    assert await store.existing_alerts(["msg_s", "msg_c2", "msg_nope"]) == {"msg_s", "msg_c2"}
    listed = await store.list_alerts()
    assert [r.id for r in listed] == ["msg_s"]  # copies are listed under their story's alert
    (story,) = listed
    assert story.kind == "match" and [c.id for c in story.copies] == ["msg_c1", "msg_c2"]
    assert all(c.kind == "also_reported" and c.story_alert_id == "msg_s" for c in story.copies)
    assert [d.channel for d in story.copies[0].deliveries] == ["hook"]
    copy = await store.get_alert("msg_c1")
    assert copy is not None and copy.kind == "also_reported"
    last = await store.last_story_alert("fires", 11)
    assert last is not None and last[0] == "msg_s" and last[1] == SIG + bytes([1])
    assert last[2]["id"] == "msg_s"
    assert await store.last_story_alert("fires", 33) is None
    assert await store.last_story_alert("other", 11) is None


async def test_a_story_alert_stored_first_by_another_copy_makes_this_one_its_copy(
    store: Storage,
) -> None:
    """Two copies of a story decided at once both think they start it: the first stored alerts,
    the second is stored as its also_reported copy (with its own delivery), nothing dropped."""
    a, b = await feed_ids(store)

    def first(ref: int) -> NewAlert:
        copy = NewAlert(f"msg_copy{ref}", "fires", {"type": "also_reported", "alert_id": "msg_s"},
                        ["hook", "mail"], kind="also_reported", story_alert_id="msg_s")  # fmt: skip
        return NewAlert("msg_s", "fires", {"type": "match"}, ["hook"], if_exists=copy)

    winner, loser = first(11), first(22)
    await store.add_articles([story_article(a, 1, 11, 11, [1], T0, [winner])])
    ids = await store.add_articles(
        [story_article(b, 2, 22, 11, [1], T0 + timedelta(minutes=1), [loser])]
    )
    assert ids[0] is not None
    assert not winner.taken
    assert loser.taken and loser.if_exists is not None and not loser.if_exists.taken
    (story,) = await store.list_alerts()
    assert story.id == "msg_s" and story.article_id != ids[0]
    assert [c.id for c in story.copies] == ["msg_copy22"]
    assert sorted(d.channel for d in story.copies[0].deliveries) == ["hook", "mail"]
    assert (await store.get_alert("msg_copy22")).payload["alert_id"] == "msg_s"  # type: ignore[union-attr]
    # The same copy again (a replay) is dropped like any existing alert.
    again = first(22)
    await store.add_articles([story_article(b, 3, 22, 11, [1], T0 + timedelta(minutes=2), [again])])
    assert again.taken and again.if_exists is not None and again.if_exists.taken
    assert [c.id for c in (await store.list_alerts())[0].copies] == ["msg_copy22"]


async def test_two_copies_starting_a_story_in_one_batch_make_one_alert_and_one_copy(
    store: Storage,
) -> None:
    """Two copies of a story in one write (a group commit), each thinking it starts the story:
    the first stores the story's alert, the second its copy; neither is dropped."""
    a, b = await feed_ids(store)

    def first(ref: int) -> NewAlert:
        copy = NewAlert(f"msg_copy{ref}", "fires", {"type": "also_reported", "alert_id": "msg_s"},
                        ["hook"], kind="also_reported", story_alert_id="msg_s")  # fmt: skip
        return NewAlert("msg_s", "fires", {"type": "match"}, ["hook"], if_exists=copy)

    x, y = first(11), first(22)
    ids = await store.add_articles(
        [
            story_article(a, 1, 11, 11, [1], T0, [x]),
            story_article(b, 2, 22, 11, [1], T0 + timedelta(minutes=1), [y]),
        ]
    )
    assert None not in ids
    assert not x.taken and y.taken and y.if_exists is not None and not y.if_exists.taken
    (story,) = await store.list_alerts()
    assert story.id == "msg_s" and story.article_id == ids[0]
    assert [c.id for c in story.copies] == ["msg_copy22"]
    assert [c.article_id for c in story.copies] == [ids[1]]
    assert [d.channel for d in story.copies[0].deliveries] == ["hook"]


async def test_an_article_without_a_story_has_no_keys(store: Storage) -> None:
    a, _ = await feed_ids(store)
    await store.add_articles(
        [NewArticle(feed_id=a, guid="x", url=None, canonical_url=None, title="t")]
    )
    assert await store.story_rows(T0 - timedelta(days=3650)) == []
