"""What only the embedded tinydb backend has: restart recovery, group commit, log folding,
history retention, slow watchers, the directory lock, and a full disk (a real small tmpfs)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from clusterctl.store import Compacted, StoreError, WatchOverflow
from clusterctl.store.tinydb_store import StoreLocked, TinyDBStore
from clusterctl.store.wal import list_segments

PODS = "/registry/core/pods/"


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def opened(data_dir, **options) -> TinyDBStore:
    store = TinyDBStore(data_dir, **options)
    await store.start()
    return store


async def test_restart_recovers_items_revision_and_watch_history(tmp_path):
    store = await opened(tmp_path, snapshot_on_close=False)
    a = await store.create(PODS + "default/a", {"n": 1})
    before = store.revision
    await store.update(PODS + "default/a", {"n": 2}, expected_revision=a.mod_revision)
    await store.create(PODS + "default/b", {"n": 1})
    await store.delete(PODS + "default/b")
    state = (await store.list("/")).items
    revision = store.revision
    await store.close()

    store = await opened(tmp_path)
    try:
        assert (await store.list("/")).items == state
        assert store.revision == revision
        watch = store.watch(PODS, after_revision=before)  # history after the snapshot comes from the log
        events = [await asyncio.wait_for(watch.__anext__(), 30) for _ in range(3)]
        assert [(e.type, e.revision) for e in events] == [
            ("PUT", before + 1), ("PUT", before + 2), ("DELETE", before + 3)]
        assert events[2].value == {"n": 1}
        await watch.aclose()
        assert (await store.create(PODS + "default/c", {})).mod_revision == revision + 1
    finally:
        await store.close()


async def test_revision_survives_a_snapshot_of_an_empty_store(tmp_path):
    store = await opened(tmp_path)
    await store.create(PODS + "default/a", {})
    await store.delete(PODS + "default/a")
    await store.snapshot()
    await store.close()
    assert list_segments(tmp_path)[0][1].stat().st_size == 0  # everything folded
    store = await opened(tmp_path)
    try:
        assert store.revision == 2 and len(store) == 0
        assert (await store.create(PODS + "default/a", {})).mod_revision == 3  # never reused
        with pytest.raises(Compacted):  # history before the snapshot is gone after a restart
            await store.watch(PODS, after_revision=0).__anext__()
    finally:
        await store.close()


async def test_concurrent_writers_share_fsyncs(tmp_path):
    store = await opened(tmp_path)
    try:
        async def writer(w):
            for i in range(30):
                await store.create(PODS + f"w{w}/p{i}", {"w": w, "i": i})
        await asyncio.gather(*(writer(w) for w in range(16)))
        assert store.committed_writes == 480
        assert store.commit_batches < store.committed_writes / 3, (store.commit_batches, store.committed_writes)
    finally:
        await store.close()


async def test_log_folds_into_snapshot_while_writing_and_recovers(tmp_path):
    store = await opened(tmp_path, snapshot_log_records=25, snapshot_on_close=False)
    # A fold starts (from a write) only when none is running, so how many folds 200 writes see depends on
    # the machine's speed (a loaded one saw < 5): write until 5 folds have interleaved with the writes.
    i = 0
    while i < 200 or store.snapshots_written < 5:
        assert i < 20_000, f"only {store.snapshots_written} snapshot folds in {i} writes"
        await store.create(PODS + f"default/p{i:05}", {"i": i})
        if i % 3 == 0:
            await store.update(PODS + f"default/p{i:05}", {"i": i, "updated": True})
        i += 1
    state, revision = (await store.list("/")).items, store.revision
    await store.close()
    assert len(list_segments(tmp_path)) <= 3, "folded segments are deleted"
    store = await opened(tmp_path)
    try:
        assert store.recovered.snapshot_revision > 0
        assert (await store.list("/")).items == state and store.revision == revision
    finally:
        await store.close()


async def test_history_is_retained_for_a_configured_time(tmp_path):
    clock = FakeClock()
    store = await opened(tmp_path, history_seconds=60, clock=clock)
    try:
        await store.create(PODS + "default/a", {})
        clock.now += 30
        b = await store.create(PODS + "default/b", {})
        clock.now += 40  # a is 70 s old, b 40 s
        with pytest.raises(Compacted) as caught:
            await store.watch(PODS, after_revision=0).__anext__()
        assert caught.value.compact_revision == 1
        watch = store.watch(PODS, after_revision=1)
        assert (await watch.__anext__()).revision == b.mod_revision
        await watch.aclose()
        clock.now += 30
        with pytest.raises(Compacted):
            await store.watch(PODS, after_revision=1).__anext__()
        with pytest.raises(Compacted):
            await store.list(PODS, revision=1)
    finally:
        await store.close()


async def test_history_is_bounded_in_events(tmp_path):
    store = await opened(tmp_path, history_events=3)
    try:
        for i in range(6):
            await store.create(PODS + f"default/p{i}", {})
        with pytest.raises(Compacted):
            await store.watch(PODS, after_revision=2).__anext__()
        watch = store.watch(PODS, after_revision=3)
        assert [(await watch.__anext__()).revision for _ in range(3)] == [4, 5, 6]
        await watch.aclose()
    finally:
        await store.close()


async def test_slow_watcher_is_ended_and_stalls_nobody(tmp_path):
    store = await opened(tmp_path, watch_buffer=20)
    try:
        await store.create(PODS + "default/first", {})
        slow = store.watch(PODS, after_revision=0)
        assert (await slow.__anext__()).key == PODS + "default/first"  # subscribed, then never read
        fast_events = []

        async def fast():
            async for event in store.watch(PODS, after_revision=store.revision):
                fast_events.append(event)
                if len(fast_events) == 300:
                    return
        fast_task = asyncio.create_task(fast())
        await asyncio.sleep(0)
        started = time.monotonic()
        for i in range(30):  # 30 group commits of 10 writes each
            await asyncio.gather(*(store.create(PODS + f"w{w}/p{i}", {"i": i}) for w in range(10)))
        # loose on purpose (a loaded machine takes ~1 s): writes stalled behind the unread watcher would never finish
        assert time.monotonic() - started < 30
        await asyncio.wait_for(fast_task, 30)
        assert [e.revision for e in fast_events] == list(range(2, 302))

        drained = []
        with pytest.raises(WatchOverflow) as caught:
            async with asyncio.timeout(30):
                async for event in slow:
                    drained.append(event)
        # what was buffered (the limit, plus the rest of the batch that reached it) is delivered,
        # then the watch ends instead of buffering all 300
        assert 20 <= len(drained) < 30
        assert caught.value.requested == drained[-1].revision
        assert isinstance(caught.value, Compacted)
    finally:
        await store.close()


async def test_watchers_end_when_the_store_closes(tmp_path):
    store = await opened(tmp_path)
    watch = store.watch(PODS, after_revision=0)
    waiter = asyncio.create_task(watch.__anext__())
    await asyncio.sleep(0.01)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 30)


async def test_a_data_directory_opens_once(tmp_path):
    store = await opened(tmp_path)
    try:
        with pytest.raises(StoreLocked, match=str(os.getpid())):
            await opened(tmp_path)
    finally:
        await store.close()
    other = await opened(tmp_path)
    await other.close()


async def test_full_disk_write_is_refused_and_not_applied(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], check=True)
    try:
        ballast = mount_point / "ballast"
        ballast.write_bytes(b"b" * 64 * 1024)
        store = await opened(mount_point / "store", snapshot_on_close=False)
        acknowledged = {}
        with pytest.raises(StoreError, match="No space left on device") as caught:
            for i in range(100):
                item = await store.create(PODS + f"default/p{i}", {"pad": "p" * 20_000})
                acknowledged[item.key] = item
        assert "write-ahead log" in str(caught.value)
        assert 0 < len(acknowledged) < 100
        failed_key = PODS + f"default/p{len(acknowledged)}"
        assert await store.get(failed_key) is None
        assert store.revision == max(item.mod_revision for item in acknowledged.values())
        assert {item.key: item for item in (await store.list("/")).items} == acknowledged

        ballast.unlink()  # space is back: the store takes writes again
        item = await store.create(failed_key, {"pad": "small"})
        acknowledged[item.key] = item
        await store.close()

        store = await opened(mount_point / "store", snapshot_on_close=False)
        assert {item.key: item for item in (await store.list("/")).items} == acknowledged
        await store.close()
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)  # lazy: even if a failed test left files open


async def test_watch_progress_tells_how_far_a_watch_is_complete(tmp_path):
    store = await opened(tmp_path)
    try:
        await store.create(PODS + "quiet/a", {"n": 1})
        start = store.revision
        await store.create(PODS + "busy/x", {"n": 1})
        watch = store.watch(PODS + "quiet/", after_revision=start)
        assert watch.progress() is None  # not subscribed yet
        waiter = asyncio.ensure_future(watch.__anext__())
        await asyncio.sleep(0.05)
        assert watch.progress() == store.revision  # nothing of its prefix since `start`
        await store.create(PODS + "busy/y", {"n": 1})
        assert watch.progress() == store.revision  # a write elsewhere advances it
        await store.create(PODS + "quiet/b", {"n": 1})
        mine = store.revision
        assert watch.progress() is None or watch.progress() < mine  # buffered, not yet delivered
        event = await asyncio.wait_for(waiter, 30)
        assert event.revision == mine
        assert watch.progress() == mine
        await watch.aclose()
    finally:
        await store.close()


async def test_watch_from_a_future_revision_skips_queued_and_later_writes_up_to_it(tmp_path):
    store = await opened(tmp_path)
    try:
        start = store.revision
        # writes queued (revisions allocated) but not yet applied when the watch subscribes
        writes = [asyncio.ensure_future(store.create(PODS + f"default/p{i}", {"n": i})) for i in range(4)]
        watch = store.watch(PODS, after_revision=start + 3)
        first = asyncio.ensure_future(watch.__anext__())
        await asyncio.gather(*writes)
        await store.create(PODS + "default/p4", {"n": 4})
        got = [await asyncio.wait_for(first, 30)]
        got.append(await asyncio.wait_for(watch.__anext__(), 30))
        assert [e.revision for e in got] == [start + 4, start + 5]
        await watch.aclose()
    finally:
        await store.close()


def test_snapshot_keeps_values_as_json_and_reads_format_1(tmp_path):
    import orjson

    from clusterctl.store import CorruptLog
    from clusterctl.store.snapshot import read_snapshot, write_snapshot
    from clusterctl.store.base import Item

    items = {PODS + "default/a": Item(PODS + "default/a", None, 7, 3, b'{"n":1,"s":"x\\"y"}'),
             PODS + "default/b": Item(PODS + "default/b", {"n": 2}, 8, 8)}
    path = tmp_path / "snapshot.json"
    write_snapshot(path, items, 8)
    back = read_snapshot(path)
    assert back.revision == 8 and back.items == items
    assert back.items[PODS + "default/a"].raw == b'{"n":1,"s":"x\\"y"}'
    # a damaged value inside an intact file is refused
    data = orjson.loads(path.read_bytes())
    first = next(iter(data["items"]))
    data["items"][first]["j"] = '{"n":1'
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(CorruptLog):
        read_snapshot(path)
    # format 1 (values as objects) still loads
    data = {"items": {"1": {"k": PODS + "default/old", "v": {"n": 3}, "m": 2, "c": 2}},
            "meta": {"1": {"format": 1, "revision": 2, "count": 1, "written_at": 1.0}}}
    path.write_bytes(orjson.dumps(data))
    old = read_snapshot(path).items[PODS + "default/old"]
    assert old.value == {"n": 3} and old.mod_revision == 2


async def test_triggered_watchers_get_only_the_events_of_their_index_value(tmp_path):
    """A node agent's ``spec.nodeName=X`` watch as a Trigger: each event reaches the watchers
    indexed under its value or previous value (a pod moving from n1 to n2 concerns both), other
    watchers are not even offered it, history replay is filtered the same way, and progress still
    advances for a watcher that received nothing."""
    from clusterctl.store.fanout import Trigger

    def node_of(key, value):
        return (value.get("spec") or {}).get("nodeName", "")

    store = await opened(tmp_path)
    try:
        await store.create(PODS + "default/early", {"spec": {"nodeName": "n1"}})
        start = store.revision - 1
        watches = {node: store.watch(PODS, after_revision=start, trigger=Trigger(PODS, "spec.nodeName", node_of, node))
                   for node in ("n1", "n2", "n3")}
        firsts = {node: asyncio.ensure_future(w.__anext__()) for node, w in watches.items()}
        assert (await asyncio.wait_for(firsts["n1"], 30)).key == PODS + "default/early"  # replayed
        p = await store.create(PODS + "default/p", {"spec": {"nodeName": "n1"}})
        await store.update(PODS + "default/p", {"spec": {"nodeName": "n2"}}, expected_revision=p.mod_revision)
        await store.create(PODS + "default/q", {"spec": {"nodeName": "n2"}})
        await store.create(PODS + "default/r", {"spec": {}})
        await store.delete(PODS + "default/q")

        async def take(node, count, first=None):
            got = [first] if first is not None else []
            while len(got) < count:
                got.append(await asyncio.wait_for(watches[node].__anext__(), 30))
            return [(e.type, e.key.rsplit("/", 1)[1], (e.value.get("spec") or {}).get("nodeName")) for e in got]

        assert await take("n1", 2) == [("PUT", "p", "n1"), ("PUT", "p", "n2")]
        assert await take("n2", 3, await asyncio.wait_for(firsts["n2"], 30)) == [
            ("PUT", "p", "n2"), ("PUT", "q", "n2"), ("DELETE", "q", "n2")]
        assert not firsts["n3"].done()
        n3 = watches["n3"].subscriber
        assert not n3.buffer and n3.seen == start + 1  # never offered anything since it subscribed
        assert watches["n3"].progress() == store.revision   # yet known complete up to now
        firsts["n3"].cancel()
        await asyncio.gather(firsts["n3"], return_exceptions=True)
        for w in watches.values():
            await w.aclose()
        assert store.status()["watchers"] == 0
    finally:
        await store.close()
