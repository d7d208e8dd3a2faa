"""What only the etcd backend has: endpoint failover, errors when etcd is away, the config
factory, and watches ending with the store. Runs against the session's real etcd."""

from __future__ import annotations

import asyncio

import pytest

from clusterctl.errors import UsageError
from clusterctl.store import StoreError, open_store
from clusterctl.store.etcd_process import free_port
from clusterctl.store.etcd_store import EtcdStore, prefix_end


async def until(condition, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


def test_prefix_end():
    assert prefix_end(b"/registry/") == b"/registry0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"


async def test_a_dead_endpoint_is_skipped(etcd_server):
    dead = f"http://127.0.0.1:{free_port()}"
    store = EtcdStore([dead, etcd_server.endpoint], prefix="/failover", **etcd_server.store_options())
    await store.start()
    try:
        item = await store.create("/registry/core/pods/default/a", {"a": 1})
        assert (await store.get("/registry/core/pods/default/a")) == item
        assert store.endpoint == etcd_server.endpoint
    finally:
        await store.close()


async def test_unreachable_etcd_raises_store_error_naming_the_endpoints():
    dead = f"http://127.0.0.1:{free_port()}"
    store = EtcdStore([dead], prefix="/nowhere", timeout=2, retry_budget=0.3)
    with pytest.raises(StoreError, match=dead.replace(".", r"\.")):
        await store.start()


async def test_prefix_isolates_stores_sharing_one_etcd(etcd_server):
    one = open_store(etcd_server.store_config(prefix="/cluster-one"))
    two = open_store(etcd_server.store_config(prefix="/cluster-two"))
    await one.start()
    await two.start()
    try:
        await one.create("/registry/core/namespaces/default", {"n": 1})
        assert await two.get("/registry/core/namespaces/default") is None
        assert [item.key for item in (await one.list("/registry/")).items] == ["/registry/core/namespaces/default"]
        assert (await two.list("/registry/")).items == []
    finally:
        await one.close()
        await two.close()


async def test_watch_ends_when_the_store_closes(etcd_server):
    store = EtcdStore([etcd_server.endpoint], prefix="/closing", **etcd_server.store_options())
    await store.start()
    watch = store.watch("/registry/", after_revision=store.revision)
    waiter = asyncio.create_task(watch.__anext__())
    await asyncio.sleep(0.2)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 30)


def test_open_store_rejects_bad_configs(tmp_path):
    with pytest.raises(UsageError, match="data_dir"):
        open_store({"backend": "tinydb"})
    with pytest.raises(UsageError, match="endpoints"):
        open_store({"backend": "etcd"})
    with pytest.raises(UsageError, match="unknown backend"):
        open_store({"backend": "sqlite"})
    with pytest.raises(UsageError, match="history_secs"):
        open_store({"backend": "tinydb", "data_dir": str(tmp_path), "history_secs": 3})


async def test_watchers_of_one_prefix_share_one_etcd_stream(etcd_server):
    store = EtcdStore([etcd_server.endpoint], prefix="/shared", watch_replay=3, **etcd_server.store_options())
    await store.start()
    try:
        old = store.revision
        for i in range(5):
            await store.create(f"/registry/core/pods/default/old{i}", {"i": i})
        start = store.revision
        watches = [store.watch("/registry/core/pods/", after_revision=start) for _ in range(5)]
        firsts = [asyncio.ensure_future(w.__anext__()) for w in watches]
        await until(lambda: store._watch_responses)  # the (first) stream is open, however loaded the machine
        await asyncio.sleep(0.2)  # time for any further stream to open, were the watchers not sharing one
        assert len(store._watch_responses) == 1
        created = await store.create("/registry/core/pods/default/new", {"n": 1})
        for first in firsts:
            assert (await asyncio.wait_for(first, 30)).revision == created.mod_revision

        # older than what the shared stream covers: a stream of its own, replayed by etcd
        late = store.watch("/registry/core/pods/", after_revision=old)
        replayed = [await asyncio.wait_for(late.__anext__(), 30) for _ in range(6)]
        assert [e.revision for e in replayed] == list(range(old + 1, old + 6)) + [created.mod_revision]
        assert len(store._watch_responses) == 2
        await late.aclose()
        for watch in watches:
            await watch.aclose()
        await until(lambda: store._watch_responses == set() and store._hubs == {})
    finally:
        await store.close()


async def test_slow_etcd_watcher_is_ended_without_stalling_the_others(etcd_server):
    from clusterctl.store import WatchOverflow

    store = EtcdStore([etcd_server.endpoint], prefix="/slow", watch_buffer=5, **etcd_server.store_options())
    await store.start()
    try:
        start = store.revision
        slow = store.watch("/registry/", after_revision=start)
        fast = store.watch("/registry/", after_revision=start)
        slow_first = asyncio.ensure_future(slow.__anext__())
        await asyncio.sleep(0.2)
        received = []

        async def consume():
            async for event in fast:
                received.append(event.revision)
                if len(received) == 40:
                    return
        consumer = asyncio.create_task(consume())
        for i in range(40):
            await store.create(f"/registry/core/pods/default/p{i}", {"i": i})
        await asyncio.wait_for(consumer, 30)
        assert received == sorted(received) and len(received) == 40
        await asyncio.wait_for(slow_first, 30)
        with pytest.raises(WatchOverflow):
            async with asyncio.timeout(30):
                async for _ in slow:
                    pass
        await fast.aclose()
    finally:
        await store.close()


async def test_concurrent_reads_share_few_requests_and_long_lists_stay_whole(etcd_server):
    from clusterctl.store.etcd_store import MERGED_LIST_KEYS

    store = EtcdStore([etcd_server.endpoint], prefix="/merged", read_batches=1, **etcd_server.store_options())
    await store.start()
    try:
        written = [await store.create(f"/registry/core/configmaps/default/c{i}", {"i": i}) for i in range(5)]
        many = MERGED_LIST_KEYS + 40
        await asyncio.gather(*(store.create(f"/registry/core/pods/default/p{i:04d}", {"i": i}) for i in range(many)))
        requests, merged = store.stats["requests"], store.stats["merged_reads"]
        gets = [store.get(f"/registry/core/configmaps/default/c{i % 6}") for i in range(60)]
        small = [store.list("/registry/core/configmaps/") for _ in range(10)]
        got = await asyncio.gather(*gets, *small, store.list("/registry/core/pods/"))
        for i, item in enumerate(got[:60]):
            assert item == (written[i % 6] if i % 6 < 5 else None)
        for listed in got[60:70]:
            assert listed.items == written and not listed.more and listed.revision >= written[-1].mod_revision
        pods = got[70]
        assert len(pods.items) == many and not pods.more  # too long to ride along: read again on its own
        assert [p.value["i"] for p in pods.items] == list(range(many))
        sent = store.stats["requests"] - requests
        assert sent <= 8, sent  # 71 reads
        assert store.stats["merged_reads"] - merged >= 71 - sent
        before = store.stats["requests"]
        assert len((await store.list("/registry/core/pods/")).items) == many
        assert store.stats["requests"] == before + 1  # known to be long: no merged attempt first
        # a read asked for after a write completed sees that write
        updated = await store.update("/registry/core/configmaps/default/c0", {"i": "new"})
        assert (await store.get("/registry/core/configmaps/default/c0")) == updated
    finally:
        await store.close()


async def test_lists_at_a_revision_see_exactly_that_revision(etcd_server):
    from clusterctl.store import FutureRevision

    store = EtcdStore([etcd_server.endpoint], prefix="/at-revision", **etcd_server.store_options())
    await store.start()
    try:
        first = await store.create("/registry/core/configmaps/default/a", {"v": 1})
        await store.update(first.key, {"v": 2})
        await store.create("/registry/core/configmaps/default/b", {"v": 1})
        then = await store.list("/registry/core/configmaps/", revision=first.mod_revision)
        assert then.revision == first.mod_revision and [i.value for i in then.items] == [{"v": 1}]
        with pytest.raises(FutureRevision):
            await store.list("/registry/core/configmaps/", revision=store.revision + 100)
    finally:
        await store.close()
