"""The store contract (``clusterctl.store.base``), checked against both backends.

Every test runs twice through the ``store`` fixture: the embedded tinydb backend and a real
etcd on loopback. What passes here is what the API server may rely on.
"""

from __future__ import annotations

import asyncio

import pytest

from clusterctl.store import Compacted, KeyExists, KeyNotFound, RevisionConflict

PODS = "/registry/core/pods/"


def pod(name: str, **extra) -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"}, **extra}


async def next_events(watch, count: int, timeout: float = 5.0) -> list:
    return [await asyncio.wait_for(watch.__anext__(), timeout) for _ in range(count)]


async def test_create_get_update_delete(store):
    key = PODS + "default/web"
    created = await store.create(key, pod("web"))
    assert created.key == key and created.value == pod("web")
    assert created.mod_revision == created.create_revision > 0
    assert await store.get(key) == created

    updated = await store.update(key, pod("web", spec={"x": 1}), expected_revision=created.mod_revision)
    assert updated.mod_revision > created.mod_revision
    assert updated.create_revision == created.create_revision
    assert (await store.get(key)).value == pod("web", spec={"x": 1})

    deleted = await store.delete(key, expected_revision=updated.mod_revision)
    assert deleted.value == pod("web", spec={"x": 1})
    assert deleted.mod_revision > updated.mod_revision
    assert await store.get(key) is None
    assert store.revision >= deleted.mod_revision


async def test_create_of_existing_key_raises_key_exists(store):
    await store.create(PODS + "default/a", pod("a"))
    with pytest.raises(KeyExists) as caught:
        await store.create(PODS + "default/a", pod("a", spec={}))
    assert caught.value.key == PODS + "default/a"
    assert (await store.get(PODS + "default/a")).value == pod("a")


async def test_update_and_delete_of_missing_key_raise_key_not_found(store):
    with pytest.raises(KeyNotFound):
        await store.update(PODS + "default/nope", pod("nope"))
    with pytest.raises(KeyNotFound):
        await store.update(PODS + "default/nope", pod("nope"), expected_revision=3)
    with pytest.raises(KeyNotFound):
        await store.delete(PODS + "default/nope")


async def test_stale_revision_raises_conflict_carrying_current_item(store):
    key = PODS + "default/c"
    first = await store.create(key, pod("c"))
    second = await store.update(key, pod("c", spec={"v": 2}))
    with pytest.raises(RevisionConflict) as caught:
        await store.update(key, pod("c", spec={"v": 3}), expected_revision=first.mod_revision)
    assert caught.value.expected == first.mod_revision
    assert caught.value.current == second
    with pytest.raises(RevisionConflict) as caught:
        await store.delete(key, expected_revision=first.mod_revision)
    assert caught.value.current == second
    assert (await store.get(key)) == second


async def test_revisions_increase_with_every_write(store):
    seen = []
    for i in range(5):
        seen.append((await store.create(PODS + f"default/r{i}", pod(f"r{i}"))).mod_revision)
        seen.append((await store.update(PODS + f"default/r{i}", pod(f"r{i}", n=i))).mod_revision)
    seen.append((await store.delete(PODS + "default/r0")).mod_revision)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert store.revision == seen[-1]


async def test_value_handed_to_the_store_is_not_shared(store):
    value = pod("copy", spec={"containers": [{"name": "c"}]})
    item = await store.create(PODS + "default/copy", value)
    value["spec"]["containers"].append({"name": "mutated"})
    assert (await store.get(PODS + "default/copy")).value["spec"]["containers"] == [{"name": "c"}]
    assert item.value["spec"]["containers"] == [{"name": "c"}]


async def test_list_by_prefix_in_key_order_with_paging(store):
    for ns, name in [("b", "2"), ("a", "1"), ("b", "1"), ("a", "3"), ("a", "2")]:
        await store.create(PODS + f"{ns}/{name}", pod(name))
    await store.create("/registry/core/podsx/a/1", pod("other kind, same leading letters"))
    await store.create("/registry/core/services/a/1", pod("service"))

    everything = await store.list(PODS)
    assert [item.key[len(PODS):] for item in everything.items] == ["a/1", "a/2", "a/3", "b/1", "b/2"]
    assert not everything.more and everything.revision == store.revision
    assert [item.key for item in (await store.list(PODS + "a/")).items] == [PODS + "a/1", PODS + "a/2", PODS + "a/3"]

    first = await store.list(PODS, limit=2)
    assert [item.key[len(PODS):] for item in first.items] == ["a/1", "a/2"] and first.more
    second = await store.list(PODS, limit=2, start_after=first.items[-1].key, revision=first.revision)
    assert [item.key[len(PODS):] for item in second.items] == ["a/3", "b/1"] and second.more
    third = await store.list(PODS, limit=2, start_after=second.items[-1].key, revision=first.revision)
    assert [item.key[len(PODS):] for item in third.items] == ["b/2"] and not third.more
    assert (await store.list(PODS, limit=5)).more is False


async def test_paging_at_the_first_pages_revision_ignores_later_writes(store):
    for name in "abcd":
        await store.create(PODS + f"default/{name}", pod(name))
    first = await store.list(PODS, limit=2)
    await store.create(PODS + "default/bb", pod("bb"))             # after the first page, would sort in page 2
    await store.update(PODS + "default/c", pod("c", spec={"changed": True}))
    await store.delete(PODS + "default/d")
    rest = await store.list(PODS, start_after=first.items[-1].key, revision=first.revision)
    assert [item.key[len(PODS) + 8:] for item in rest.items] == ["c", "d"]
    assert rest.items[0].value == pod("c")
    assert rest.revision == first.revision
    now = await store.list(PODS, start_after=first.items[-1].key)
    assert [item.key[len(PODS) + 8:] for item in now.items] == ["bb", "c"]


async def test_watch_replays_history_then_streams_live_in_order(store):
    start = store.revision
    a = await store.create(PODS + "default/a", pod("a"))
    await store.create("/registry/core/services/default/a", pod("not a pod"))
    a2 = await store.update(PODS + "default/a", pod("a", spec={"v": 2}))
    watch = store.watch(PODS, after_revision=start)
    try:
        replayed = await next_events(watch, 2)
        assert [(e.type, e.revision, e.created) for e in replayed] == [
            ("PUT", a.mod_revision, True), ("PUT", a2.mod_revision, False)]
        assert replayed[1].value == pod("a", spec={"v": 2})

        b = await store.create(PODS + "default/b", pod("b"))
        gone = await store.delete(PODS + "default/a")
        live = await next_events(watch, 2)
        assert [(e.type, e.key, e.revision, e.created) for e in live] == [
            ("PUT", PODS + "default/b", b.mod_revision, True),
            ("DELETE", PODS + "default/a", gone.mod_revision, False)]
        assert live[1].value == pod("a", spec={"v": 2})  # a DELETE carries the last value
    finally:
        await watch.aclose()


async def test_watch_from_the_middle_skips_older_events(store):
    await store.create(PODS + "default/a", pod("a"))
    middle = store.revision
    b = await store.create(PODS + "default/b", pod("b"))
    watch = store.watch(PODS, after_revision=middle)
    try:
        (event,) = await next_events(watch, 1)
        assert event.revision == b.mod_revision and event.key == PODS + "default/b"
    finally:
        await watch.aclose()


async def test_recreated_key_is_added_again(store):
    start = store.revision
    await store.create(PODS + "default/again", pod("again"))
    await store.delete(PODS + "default/again")
    await store.create(PODS + "default/again", pod("again", n=2))
    watch = store.watch(PODS, after_revision=start)
    try:
        events = await next_events(watch, 3)
        assert [(e.type, e.created) for e in events] == [("PUT", True), ("DELETE", False), ("PUT", True)]
    finally:
        await watch.aclose()


async def test_watch_from_a_compacted_revision_raises_compacted(store):
    early = store.revision
    for i in range(4):
        await store.create(PODS + f"default/k{i}", pod(f"k{i}"))
    compacted_at = await store.compact(store.revision)
    assert compacted_at == store.revision
    watch = store.watch(PODS, after_revision=early)
    with pytest.raises(Compacted) as caught:
        await asyncio.wait_for(watch.__anext__(), 30)
    assert caught.value.compact_revision >= early + 1
    await watch.aclose()
    with pytest.raises(Compacted):
        await store.list(PODS, revision=early + 1)

    # Watching from the current revision still works after compaction.
    watch = store.watch(PODS, after_revision=store.revision)
    try:
        created = await store.create(PODS + "default/after", pod("after"))
        (event,) = await next_events(watch, 1)
        assert event.revision == created.mod_revision
    finally:
        await watch.aclose()


async def test_concurrent_writers_every_acknowledged_write_is_visible(store):
    acknowledged = {}

    async def writer(w: int) -> None:
        for i in range(15):
            key = PODS + f"w{w}/p{i}"
            item = await store.create(key, pod(f"p{i}", writer=w))
            if i % 3 == 0:
                item = await store.update(key, pod(f"p{i}", writer=w, v=2), expected_revision=item.mod_revision)
            acknowledged[key] = item

    await asyncio.gather(*(writer(w) for w in range(16)))
    revisions = [item.mod_revision for item in acknowledged.values()]
    assert len(set(revisions)) == len(revisions)
    listed = {item.key: item for item in (await store.list(PODS)).items}
    assert listed == acknowledged


async def test_concurrent_compare_and_set_on_one_key_lets_exactly_one_win(store):
    item = await store.create(PODS + "default/race", pod("race", n=0))

    async def attempt(n: int):
        try:
            return await store.update(PODS + "default/race", pod("race", n=n), expected_revision=item.mod_revision)
        except RevisionConflict:
            return None

    results = await asyncio.gather(*(attempt(n) for n in range(1, 9)))
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert await store.get(PODS + "default/race") == winners[0]


async def test_watch_from_a_future_revision_starts_there(store):
    start = store.revision
    watch = store.watch(PODS, after_revision=start + 2)
    try:
        waiter = asyncio.ensure_future(watch.__anext__())
        await asyncio.sleep(0.1)  # subscribed before the writes
        for name in "abcd":
            await store.create(PODS + f"default/{name}", pod(name))
        first = await asyncio.wait_for(waiter, 30)
        assert first.revision == start + 3 and first.key == PODS + "default/c"
    finally:
        await watch.aclose()


async def test_items_carry_their_json_when_the_backend_has_it(store):
    import orjson

    created = await store.create(PODS + "default/raw", pod("raw", spec={"n": 1}))
    assert created.raw is None or orjson.loads(created.raw) == created.value
    fetched = await store.get(PODS + "default/raw")
    assert fetched.raw is None or orjson.loads(fetched.raw) == fetched.value
    assert fetched == created  # raw is not part of equality
