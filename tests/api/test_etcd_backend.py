"""The same API over the etcd store backend (a real local etcd): CRUD, conflicts, paging, watch
resume, and a restart of the API server that keeps everything (the data lives in etcd)."""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from clusterctl.api.testing import FAST_TIMINGS, api_client, start_control_plane
from clusterctl.store.etcd_process import LocalEtcd


@pytest.fixture
def etcd_control_plane(tmp_path):
    etcd = LocalEtcd(tmp_path / "etcd").start()
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS,
                             store=etcd.store_config())
    yield cp
    cp.stop()
    etcd.stop()


def test_api_on_etcd(etcd_control_plane):
    cp = etcd_control_plane
    api = api_client(cp)
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"e{i}"}, "data": {"v": str(i)}})
    cm = core.patch_namespaced_config_map("e0", "default", {"data": {"v": "changed"}})
    stale = core.read_namespaced_config_map("e1", "default")
    core.patch_namespaced_config_map("e1", "default", {"data": {"v": "newer"}})
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("e1", "default", stale)
    assert err.value.status == 409
    page = core.list_namespaced_config_map("default", limit=2)
    rest = core.list_namespaced_config_map("default", limit=10, _continue=page.metadata._continue)
    assert [c.metadata.name for c in page.items + rest.items] == [f"e{i}" for i in range(5)]
    core.delete_namespaced_config_map("e4", "default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "end"}})
    # replayed through an etcd watch until the sentinel (a 1 s watch could end first on a loaded machine)
    events = []
    w = watch.Watch()
    for e in w.stream(core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=30):
        events.append((e["type"], e["object"].metadata.name))
        if e["object"].metadata.name == "end":
            w.stop()
    assert events[:5] == [("ADDED", f"e{i}") for i in range(5)]
    assert events[5:] == [("MODIFIED", "e0"), ("MODIFIED", "e1"), ("DELETED", "e4"), ("ADDED", "end")]
    api.close()
    cp.restart()
    api = api_client(cp)
    again = client.CoreV1Api(api).read_namespaced_config_map("e0", "default")
    assert again.data == {"v": "changed"} and again.metadata.resource_version == cm.metadata.resource_version
    api.close()
