"""Watch through the official client: event types, resume from a resourceVersion, selectors,
bookmarks, and 410 Gone when the asked revision was compacted away."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from clusterctl.api.testing import FAST_TIMINGS, api_client, start_control_plane


def _cm(name: str, value: str = "1", labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"v": value}}


def _stream(core, ns: str, **kw) -> list[tuple[str, str, str]]:
    w = watch.Watch()
    out = []
    for ev in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=1, **kw):
        obj = ev["object"]
        out.append((ev["type"], obj.metadata.name, (obj.data or {}).get("v")))
    return out


def test_watch_replays_from_resource_version_and_resumes(kube):
    core, _ = kube
    core.create_namespace({"metadata": {"name": "watch1"}})
    start = core.list_namespaced_config_map("watch1").metadata.resource_version
    core.create_namespaced_config_map("watch1", _cm("a"))
    mid = core.patch_namespaced_config_map("a", "watch1", {"data": {"v": "2"}}).metadata.resource_version
    core.create_namespaced_config_map("watch1", _cm("b"))
    core.delete_namespaced_config_map("a", "watch1")

    events = _stream(core, "watch1", resource_version=start)
    assert events == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("ADDED", "b", "1"), ("DELETED", "a", "2")]
    assert _stream(core, "watch1", resource_version=mid) == [("ADDED", "b", "1"), ("DELETED", "a", "2")]
    # no resourceVersion: the current state as ADDED events
    assert _stream(core, "watch1") == [("ADDED", "b", "1")]


def test_watch_delivers_live_events_and_selector_transitions(kube):
    core, _ = kube
    core.create_namespace({"metadata": {"name": "watch2"}})
    rv = core.list_namespaced_config_map("watch2").metadata.resource_version
    got: list = []

    def run():
        # until the sentinel, not for a fixed 2 s: on a loaded machine the writes could outlast the watch
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "watch2", label_selector="keep=yes",
                           resource_version=rv, timeout_seconds=30):
            got.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "end":
                w.stop()
    t = threading.Thread(target=run)
    t.start()
    core.create_namespaced_config_map("watch2", _cm("x", labels={"keep": "yes"}))
    core.create_namespaced_config_map("watch2", _cm("y", labels={"keep": "no"}))
    core.patch_namespaced_config_map("y", "watch2", {"metadata": {"labels": {"keep": "yes"}}})
    core.patch_namespaced_config_map("x", "watch2", {"metadata": {"labels": {"keep": "no"}}})
    core.create_namespaced_config_map("watch2", _cm("end", labels={"keep": "yes"}))
    t.join(40)
    assert got == [("ADDED", "x"), ("ADDED", "y"), ("DELETED", "x"), ("ADDED", "end")]


def _until_first_bookmark(cp, path: str) -> list[dict]:
    """The events of a raw watch up to and including its first BOOKMARK (bookmarks come every
    bookmark_interval; the stream may last 60 s, a 2 s one could end first on a loaded machine)."""
    req = urllib.request.Request(f"{cp.url}{path}&timeoutSeconds=60", headers={"Authorization": f"Bearer {cp.token}"})
    events = []
    with urllib.request.urlopen(req, context=cp.ssl_context(), timeout=60) as resp:
        for line in resp:
            if line.strip():
                events.append(json.loads(line))
                if events[-1]["type"] == "BOOKMARK":
                    break
    return events


def test_bookmarks_carry_a_resume_point(control_plane):
    rv = control_plane.request("GET", "/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"]
    lines = _until_first_bookmark(control_plane, f"/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true"
                                                 f"&resourceVersion={rv}")
    bookmarks = [e for e in lines if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_watch_from_compacted_revision_is_410(tmp_path):
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS,
                             store={"backend": "tinydb", "history_events": 5})
    try:
        api = api_client(cp)
        core = client.CoreV1Api(api)
        first = core.create_namespaced_config_map("default", _cm("old")).metadata.resource_version
        core.create_namespaced_config_map("default", _cm("old2"))
        token = core.list_namespaced_config_map("default", limit=1).metadata._continue
        for i in range(20):
            core.patch_namespaced_config_map("old", "default", {"data": {"v": str(i)}})
        # raw protocol: one ERROR event carrying a 410 Expired Status
        r = cp.request("GET", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={first}&timeoutSeconds=2")
        event = json.loads(r.body.splitlines()[0])
        assert event["type"] == "ERROR" and event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        # the official client retries once, then raises ApiException(410)
        with pytest.raises(ApiException) as err:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=first,
                                          timeout_seconds=1):
                pass
        assert err.value.status == 410
        # a continue token from before the compaction is 410 too
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map("default", limit=1, _continue=token)
        assert err.value.status == 410 and "continue parameter is too old" in err.value.body
        # recovery as clients do it: re-list, watch from the list's revision
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        core.patch_namespaced_config_map("old", "default", {"data": {"v": "last"}})
        events = [(e["type"], e["object"].data["v"]) for e in
                  watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)]
        assert events == [("MODIFIED", "last")]
        api.close()
    finally:
        cp.stop()


def test_table_watch_rows(control_plane):
    r = control_plane.request(
        "GET", "/api/v1/namespaces/default/services?watch=1&timeoutSeconds=1",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    events = [json.loads(line) for line in r.body.splitlines() if line.strip()]
    assert events and events[0]["object"]["kind"] == "Table"
    assert [c["name"] for c in events[0]["object"]["columnDefinitions"]][:3] == ["Name", "Type", "Cluster-IP"]


def test_shared_watch_cache(tmp_path):
    """With the per-kind watch cache (default for etcd) watches behave the same: resume inside and
    before the cache's window, live events to several watchers, namespace filtering."""
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS, extra={"watch_cache": "true"})
    try:
        api = api_client(cp)
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "other"}})
        before = core.list_namespaced_config_map("default").metadata.resource_version
        core.create_namespaced_config_map("default", _cm("c0"))
        # the first watch starts the feed; its start revision is after `before`: falls back to the store
        assert _stream(core, "default", resource_version=before) == [("ADDED", "c0", "1")]
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        got: list[list] = [[] for _ in range(3)]

        def run(i):
            # until the sentinel, not for a fixed 2 s: on a loaded machine the writes could outlast the watch
            w = watch.Watch()
            for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=30):
                got[i].append((ev["type"], ev["object"].metadata.name))
                if ev["object"].metadata.name == "end":
                    w.stop()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        core.create_namespaced_config_map("other", _cm("elsewhere"))
        core.create_namespaced_config_map("default", _cm("c1"))
        core.patch_namespaced_config_map("c0", "default", {"data": {"v": "2"}})
        core.delete_namespaced_config_map("c1", "default")
        core.create_namespaced_config_map("default", _cm("end"))
        for t in threads:
            t.join(40)
        assert got == [[("ADDED", "c1"), ("MODIFIED", "c0"), ("DELETED", "c1"), ("ADDED", "end")]] * 3
        # resume from inside the window
        assert _stream(core, "default", resource_version=rv) == [("ADDED", "c1", "1"), ("MODIFIED", "c0", "2"),
                                                                 ("DELETED", "c1", "1"), ("ADDED", "end", "1")]
        api.close()
    finally:
        cp.stop()


def test_bookmark_carries_the_store_revision_once_caught_up(control_plane):
    """Writes elsewhere advance the store; a caught-up watcher's bookmark says so (a resume from
    it skips nothing of its own namespace), while it never claims a revision it has not reached."""
    cp = control_plane
    cp.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "bm-quiet"}})
    cp.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "bm-busy"}})
    rv = int(cp.request("GET", "/api/v1/namespaces/bm-quiet/configmaps").json()["metadata"]["resourceVersion"])
    last = 0
    for i in range(3):
        created = cp.request("POST", "/api/v1/namespaces/bm-busy/configmaps", body=_cm(f"c{i}")).json()
        last = int(created["metadata"]["resourceVersion"])
    assert last > rv
    lines = _until_first_bookmark(cp, f"/api/v1/namespaces/bm-quiet/configmaps?watch=1&allowWatchBookmarks=true"
                                      f"&resourceVersion={rv}")
    bookmarks = [int(e["object"]["metadata"]["resourceVersion"]) for e in lines if e["type"] == "BOOKMARK"]
    assert [e for e in lines if e["type"] != "BOOKMARK"] == []
    assert bookmarks and bookmarks[0] >= last


def test_node_agent_watches_by_node_name_see_their_pods_only(kube):
    """``spec.nodeName=X`` watches (one per node agent) are served through the store's index: each
    sees the pods bound to its node (a pod bound later as ADDED), a pod bound elsewhere not at
    all; a single-object watch (by name) sees only that object; a negated term is not indexed."""
    core, _ = kube
    _check_node_agent_watches(core, "nodewatch")


def test_node_agent_watches_through_the_shared_watch_cache(tmp_path):
    """The same through the per-kind watch cache (etcd's default), which indexes its subscribers."""
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS, extra={"watch_cache": "true"})
    try:
        api = api_client(cp)
        core = client.CoreV1Api(api)
        # a first pod watch starts the kind's feed, so the watches below resume inside its window
        list(watch.Watch().stream(core.list_pod_for_all_namespaces, timeout_seconds=1))
        _check_node_agent_watches(core, "nodewatch")
        api.close()
    finally:
        cp.stop()


def _check_node_agent_watches(core, ns: str) -> None:
    core.create_namespace({"metadata": {"name": ns}})
    start = core.list_namespaced_pod(ns).metadata.resource_version

    def pod(name: str, node: str | None) -> dict:
        spec: dict = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
        if node:
            spec["nodeName"] = node
        return {"metadata": {"name": name}, "spec": spec}

    core.create_namespaced_pod(ns, pod("a", "node-1"))
    core.create_namespaced_pod(ns, pod("b", "node-2"))
    core.create_namespaced_pod(ns, pod("c", None))
    core.create_namespaced_pod_binding("c", ns, {"metadata": {"name": "c"}, "target": {"kind": "Node", "name": "node-2"}},
                                       _preload_content=False)
    core.patch_namespaced_pod_status("a", ns, {"status": {"phase": "Running"}})
    core.delete_namespaced_pod("b", ns, grace_period_seconds=0)

    def seen(**kw) -> list[tuple[str, str]]:
        w = watch.Watch()
        return [(ev["type"], ev["object"].metadata.name)
                for ev in w.stream(core.list_namespaced_pod, ns, timeout_seconds=1, resource_version=start, **kw)]

    assert seen(field_selector="spec.nodeName=node-1") == [("ADDED", "a"), ("MODIFIED", "a")]
    assert seen(field_selector="spec.nodeName=node-2") == [("ADDED", "b"), ("ADDED", "c"), ("DELETED", "b")]
    assert seen(field_selector="spec.nodeName=node-3") == []
    assert seen(field_selector="metadata.name=c") == [("ADDED", "c"), ("MODIFIED", "c")]
    assert seen(field_selector="spec.nodeName!=node-1") == [("ADDED", "b"), ("ADDED", "c"), ("MODIFIED", "c"),
                                                           ("DELETED", "b")]
