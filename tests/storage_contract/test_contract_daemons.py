"""Several daemons on one database: the registry, leases taken over from dead daemons, claims
split between concurrent daemons; and the roles a storage is opened in."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from storage.base import FeedSpec, FeedUpdate, Storage, StorageError
from tests.storage_contract.conftest import MakeStore
from tests.storage_contract.data import FEED_A, article, feed_ids, seed

# Later than any row these tests store (rows are due from the real clock's now).
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


async def test_register_heartbeat_unregister_and_list(make_store: MakeStore) -> None:
    a, b = await make_store(), await make_store()
    assert a.identity != b.identity
    info = await a.register_daemon(NOW, "1.2.3", ttl=30)
    assert info.id == a.identity and info.version == "1.2.3" and info.pid > 0
    assert info.started_at == NOW and info.alive_until == NOW + timedelta(seconds=30)
    assert info.alive(NOW) and not info.alive(NOW + timedelta(seconds=30))
    await b.register_daemon(NOW + timedelta(seconds=1), "1.2.3", ttl=30)
    await a.heartbeat(NOW + timedelta(seconds=10), ttl=30)
    listed = {d.id: d for d in await a.list_daemons()}
    assert set(listed) == {a.identity, b.identity}
    assert listed[a.identity].heartbeat_at == NOW + timedelta(seconds=10)
    assert listed[a.identity].alive_until == NOW + timedelta(seconds=40)
    assert (await a.list_daemons())[0].id == b.identity  # newest first

    await b.unregister_daemon(NOW + timedelta(seconds=20))
    gone = {d.id: d for d in await a.list_daemons()}[b.identity]
    assert gone.stopped_at == NOW + timedelta(seconds=20) and not gone.alive(NOW)
    with pytest.raises(StorageError, match="not registered"):
        await b.heartbeat(NOW + timedelta(seconds=21), ttl=30)
    # Registering again (a restart reusing the instance) makes it live again.
    again = await b.register_daemon(NOW + timedelta(seconds=22), "1.2.4", ttl=30)
    assert again.stopped_at is None and again.version == "1.2.4"


async def test_a_dead_daemons_feeds_and_deliveries_are_taken_over(make_store: MakeStore) -> None:
    dead, alive = await make_store(), await make_store()
    await dead.register_daemon(NOW, "v", ttl=30)
    await alive.register_daemon(NOW, "v", ttl=30)
    [feed] = (await dead.sync_feeds([FeedSpec(FEED_A)])).values()
    await dead.add_articles([article(feed.id, n, channels=("hook",)) for n in range(3)])
    assert len(await dead.claim_feeds(NOW, [FEED_A], 10, 600)) == 1
    assert len(await dead.claim_deliveries("hook", NOW, 10, 600)) == 3

    # While its registration holds, its leases hold.
    soon = NOW + timedelta(seconds=20)
    await alive.heartbeat(soon, ttl=30)
    assert await alive.claim_feeds(soon, [FEED_A], 10, 600) == []
    assert await alive.claim_deliveries("hook", soon, 10, 600) == []

    # It stops renewing (SIGKILL, a hung host): once lapsed, the others take its work at once,
    # long before the 600 s leases run out.
    lapsed = NOW + timedelta(seconds=31)
    await alive.heartbeat(lapsed, ttl=30)
    [taken] = await alive.claim_feeds(lapsed, [FEED_A], 10, 600)
    assert taken.lease_owner == alive.identity
    rows = await alive.claim_deliveries("hook", lapsed, 10, 600)
    assert len(rows) == 3 and all(d.attempts == 2 and d.lease_owner == alive.identity for d in rows)
    assert not {d.id: d for d in await alive.list_daemons()}[dead.identity].alive(lapsed)


async def test_a_clean_stop_hands_back_what_it_holds(make_store: MakeStore) -> None:
    leaving, staying = await make_store(), await make_store()
    await leaving.register_daemon(NOW, "v", ttl=300)
    [feed] = (await leaving.sync_feeds([FeedSpec(FEED_A)])).values()
    await leaving.add_articles([article(feed.id, 1, channels=("hook",))])
    await leaving.claim_feeds(NOW, [FEED_A], 10, 600)
    [sent] = await leaving.claim_deliveries("hook", NOW, 10, 600)
    await leaving.unregister_daemon(NOW + timedelta(seconds=5))
    later = NOW + timedelta(seconds=6)
    assert [f.key for f in await staying.claim_feeds(later, [FEED_A], 10, 600)] == [FEED_A]
    [again] = await staying.claim_deliveries("hook", later, 10, 600)
    assert again.alert_id == sent.alert_id and again.attempts == 2  # sent again, same id


async def test_concurrent_daemons_claim_each_feed_once_per_interval(make_store: MakeStore) -> None:
    daemons = [await make_store() for _ in range(3)]
    for d in daemons:
        await d.register_daemon(NOW, "v", ttl=60)
    keys = [f"https://feeds.example.org/{i}.xml" for i in range(60)]
    await daemons[0].sync_feeds([FeedSpec(k) for k in keys])
    polls: Counter[str] = Counter()
    by: Counter[str] = Counter()

    async def run(d: Storage) -> None:
        while True:
            got = await d.claim_feeds(NOW, keys, 4, 300)
            if not got:
                return
            for f in got:
                polls[f.key] += 1
                by[d.identity] += 1
            await asyncio.sleep(0)  # let the others claim meanwhile
            await d.update_feeds(
                [(f.id, FeedUpdate(NOW, NOW + timedelta(minutes=15))) for f in got]
            )

    await asyncio.gather(*(run(d) for d in daemons))
    assert set(polls) == set(keys) and set(polls.values()) == {1}
    assert sum(by.values()) == 60
    states = await daemons[0].list_feeds(keys)
    assert {s.last_polled_by for s in states} == set(by)
    assert all(s.lease_owner is None for s in states)
    # Next interval: due again, claimed again, once each.
    nxt = NOW + timedelta(minutes=15)
    for d in daemons:
        await d.heartbeat(nxt, ttl=60)
    results = await asyncio.gather(*(d.claim_feeds(nxt, keys, 100, 300) for d in daemons))
    claimed = [f.key for r in results for f in r]
    assert sorted(claimed) == sorted(keys)


async def test_concurrent_daemons_deliver_each_row_once_and_digests_whole(
    make_store: MakeStore,
) -> None:
    first, second = await make_store(), await make_store()
    ids = await seed(first, 200, channels=("hook", "digest"))
    now = datetime.now(UTC) + timedelta(seconds=1)
    results = await asyncio.gather(
        *((first if i % 2 else second).claim_deliveries("hook", now, 9, 60) for i in range(40))
    )
    taken = [d.alert_id for r in results for d in r]
    assert sorted(taken) == sorted(ids)
    # A digest claim takes every due row; a concurrent one gets none of those.
    digests = await asyncio.gather(
        first.claim_deliveries("digest", now, 500, 60),
        second.claim_deliveries("digest", now, 500, 60),
    )
    rows = [d.alert_id for r in digests for d in r]
    assert sorted(rows) == sorted(ids)


# -- roles


async def test_read_only_open_of_an_empty_database_is_refused_and_creates_nothing(
    make_store: MakeStore,
) -> None:
    for _ in range(2):  # the first refusal left nothing behind that the second would find
        with pytest.raises(StorageError, match=r"does not exist|no feedwatch data"):
            await make_store("readonly")


async def test_read_only_reads_but_never_writes(make_store: MakeStore) -> None:
    writer = await make_store()
    a, _ = await feed_ids(writer)
    await writer.add_articles([article(a, 1, channels=("hook",))])
    reader = await make_store("readonly")
    assert await reader.schema_version() == await writer.schema_version()
    assert (await reader.list_feeds())[0].key == FEED_A
    assert len(await reader.list_alerts()) == 1
    await reader.ping()
    with pytest.raises(StorageError):
        await reader.requeue(failed=True)
    with pytest.raises(StorageError):
        await reader.sync_feeds([FeedSpec("https://new.example.org/")])
    assert len(await writer.list_feeds()) == 2


async def test_ping_and_closed_storage(make_store: MakeStore) -> None:
    st = await make_store()
    await st.ping(timeout=5)
    await st.close()
    with pytest.raises(StorageError, match="not open"):
        await st.ping()
    with pytest.raises(ValueError, match="role"):
        await make_store("admin")
