"""The informer's cache logic without a server: re-list diffs, indexes, handler calls."""

from __future__ import annotations

from clusterctl.client.informer import Indexer, Informer, diff_snapshot, index_by_owner_uid, index_pods_by_node


def pod(name: str, rv: str, node: str = "", ns: str = "default", owner: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns, "resourceVersion": rv, "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "kind": "ReplicaSet", "name": "rs"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node}}


def test_diff_snapshot_finds_adds_updates_deletes() -> None:
    cached = {"default/a": pod("a", "1"), "default/b": pod("b", "2"), "default/c": pod("c", "3")}
    fresh = [pod("a", "1"), pod("b", "5"), pod("d", "6")]
    diff = diff_snapshot(cached, fresh)
    assert [o["metadata"]["name"] for o in diff.added] == ["d"]
    assert [(old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"]) for old, new in diff.updated] == [("2", "5")]
    assert [o["metadata"]["name"] for o in diff.deleted] == ["c"]


def test_indexer_keeps_indexes_in_step_with_updates_and_deletes() -> None:
    idx = Indexer({"node": index_pods_by_node, "owner": index_by_owner_uid})
    idx.upsert(pod("a", "1", node="n1", owner="rs1"))
    idx.upsert(pod("b", "1", node="n1", ns="other"))
    assert {o["metadata"]["name"] for o in idx.by_index("node", "n1")} == {"a", "b"}
    idx.upsert(pod("a", "2", node="n2", owner="rs1"))  # moved
    assert [o["metadata"]["name"] for o in idx.by_index("node", "n1")] == ["b"]
    assert [o["metadata"]["name"] for o in idx.by_index("node", "n2")] == ["a"]
    assert [o["metadata"]["name"] for o in idx.by_index("namespace", "other")] == ["b"]
    idx.remove(pod("a", "3"))
    assert idx.by_index("owner", "rs1") == [] and idx.by_index("node", "n2") == []


def test_relist_emits_synthetic_events_to_handlers() -> None:
    inf = Informer(client=None, resource="pods")  # type: ignore[arg-type]  # replace() needs no server
    seen: list[tuple[str, str]] = []
    inf.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                    on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                    on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    inf.replace([pod("a", "1"), pod("b", "1")], "10")
    assert inf.has_synced and sorted(seen) == [("add", "a"), ("add", "b")]
    seen.clear()
    inf.apply_event("MODIFIED", pod("a", "11"))
    assert seen == [("update", "a")]
    seen.clear()
    inf.replace([pod("a", "11"), pod("c", "20")], "20")  # b deleted, c added while we were away
    assert sorted(seen) == [("add", "c"), ("delete", "b")]
    assert inf.relists == 1 and inf.last_resource_version == "20"
    late: list[str] = []
    inf.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
    assert sorted(late) == ["a", "c"], "a handler added after sync sees the cache as adds"
