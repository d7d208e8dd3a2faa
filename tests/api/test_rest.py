"""CRUD, selectors, paging, concurrency, status/scale subresources through the official Python client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def _pod(name: str, labels: dict | None = None, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _deployment(name: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def _ns(core, name: str) -> str:
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def test_pod_crud_roundtrip(kube):
    core, _ = kube
    ns = _ns(core, "crud")
    created = core.create_namespaced_pod(ns, _pod("web", {"app": "web"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    got = core.read_namespaced_pod("web", ns)
    assert got.metadata.resource_version == created.metadata.resource_version

    patched = core.patch_namespaced_pod("web", ns, {"metadata": {"labels": {"tier": "front"}}})
    assert patched.metadata.labels == {"app": "web", "tier": "front"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    patched.spec.containers[0].image = "busybox:1.37"
    replaced = core.replace_namespaced_pod("web", ns, patched)
    assert replaced.spec.containers[0].image == "busybox:1.37"

    core.delete_namespaced_pod("web", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("web", ns)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'pods "web" not found'


def test_create_twice_is_409_already_exists(kube):
    core, _ = kube
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}, "data": {"a": "1"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}, "data": {"a": "1"}})
    assert err.value.status == 409
    assert json.loads(err.value.body)["message"] == 'configmaps "dup" already exists'


def test_stale_resource_version_is_409_conflict(kube):
    core, _ = kube
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "occ"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    cm.data = {"a": "2"}
    core.replace_namespaced_config_map("occ", "default", cm)
    cm.data = {"a": "3"}
    cm.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("occ", "default", cm)
    assert err.value.status == 409
    assert "the object has been modified" in err.value.body
    assert core.read_namespaced_config_map("occ", "default").data == {"a": "2"}


async def test_concurrent_plain_patches_never_conflict(control_plane):
    """Patches without a resourceVersion precondition are retried against the winning write until
    they apply (Kubernetes' GuaranteedUpdate): 48 patchers and a status writer hammering one pod
    all get 200, and every patch is in the final object. Only a stale precondition is a 409."""
    import asyncio
    import ssl

    import aiohttp

    cp = control_plane
    path = "/api/v1/namespaces/default/pods/hot"
    assert cp.request("POST", "/api/v1/namespaces/default/pods", body=_pod("hot")).status == 201
    merge, strategic = "application/merge-patch+json", "application/strategic-merge-patch+json"
    statuses: list[int] = []
    patchers, rounds = 48, 6

    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(cp.ca_file)), limit=64),
            headers={"Authorization": f"Bearer {cp.token}"}) as session:
        async def patch(body: dict, content_type: str, sub: str = "") -> int:
            async with session.patch(cp.url + path + sub, data=json.dumps(body),
                                     headers={"Content-Type": content_type}) as resp:
                await resp.read()
                return resp.status

        async def patcher(i: int) -> None:
            for r in range(rounds):
                statuses.append(await patch({"metadata": {"annotations": {f"p{i}-{r}": "x"}}}, merge))

        async def status_writer() -> None:  # a node agent's writes to the same object, meanwhile
            for r in range(60):
                statuses.append(await patch({"status": {"message": f"tick {r}"}}, strategic, "/status"))

        await asyncio.gather(status_writer(), *(patcher(i) for i in range(patchers)))
        assert statuses.count(200) == len(statuses), sorted(set(statuses))
        async with session.get(cp.url + path) as resp:
            pod = await resp.json()
        annotations = pod["metadata"]["annotations"]
        assert all(f"p{i}-{r}" in annotations for i in range(patchers) for r in range(rounds))
        assert pod["status"]["message"] == "tick 59"

        stale = str(int(pod["metadata"]["resourceVersion"]) - 1)  # a precondition still conflicts
        assert await patch({"metadata": {"resourceVersion": stale, "labels": {"a": "b"}}}, merge) == 409


def test_noop_update_keeps_resource_version(kube):
    core, _ = kube
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "noop"}, "data": {"a": "1"}})
    again = core.patch_namespaced_config_map("noop", "default", {"data": {"a": "1"}})
    assert again.metadata.resource_version == cm.metadata.resource_version


def test_generate_name_and_dry_run(kube):
    core, _ = kube
    made = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}, "data": {}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9
    dry = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert dry.metadata.name == "dry"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("dry", "default")
    assert err.value.status == 404


def test_label_and_field_selectors(kube):
    core, _ = kube
    ns = _ns(core, "sel")
    core.create_namespaced_pod(ns, _pod("a1", {"app": "a", "tier": "web"}, node="n1"))
    core.create_namespaced_pod(ns, _pod("a2", {"app": "a"}, node="n2"))
    core.create_namespaced_pod(ns, _pod("b1", {"app": "b", "tier": "db"}))

    def names(**kw):
        return sorted(p.metadata.name for p in core.list_namespaced_pod(ns, **kw).items)

    assert names(label_selector="app=a") == ["a1", "a2"]
    assert names(label_selector="app==a,tier") == ["a1"]
    assert names(label_selector="app!=a") == ["b1"]
    assert names(label_selector="tier in (web,db)") == ["a1", "b1"]
    assert names(label_selector="tier notin (web)") == ["a2", "b1"]
    assert names(label_selector="!tier") == ["a2"]
    assert names(field_selector="spec.nodeName=n2") == ["a2"]
    assert names(field_selector="metadata.name!=a1,status.phase=Pending") == ["a2", "b1"]
    every = [p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items]
    assert sorted(every) == ["a1", "a2", "b1"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, field_selector="spec.bogus=x")
    assert err.value.status == 400 and "field label not supported" in err.value.body


def test_paging_with_limit_and_continue(kube):
    core, _ = kube
    ns = _ns(core, "paging")
    for i in range(7):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm{i}", "labels": {"odd": str(i % 2)}}})
    seen, token = [], None
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert len(page.items) == 3
    assert seen == [f"cm{i}" for i in range(7)]
    odd = core.list_namespaced_config_map(ns, limit=2, label_selector="odd=1")
    assert [c.metadata.name for c in odd.items] == ["cm1", "cm3"] and odd.metadata._continue


def test_status_subresource_and_generation(kube):
    _, apps = kube
    d = apps.create_namespaced_deployment("default", _deployment("gen"))
    assert d.metadata.generation == 1 and d.status is None or not d.status.replicas
    d.status = client.V1DeploymentStatus(replicas=5)
    d.spec.replicas = 3
    updated = apps.replace_namespaced_deployment("gen", "default", d)
    assert updated.metadata.generation == 2
    assert not (updated.status and updated.status.replicas)  # main resource ignores status
    st = apps.patch_namespaced_deployment_status("gen", "default", {"status": {"replicas": 3, "readyReplicas": 1}})
    assert st.status.replicas == 3 and st.metadata.generation == 2 and st.spec.replicas == 3
    again = apps.patch_namespaced_deployment("gen", "default", {"metadata": {"labels": {"x": "y"}}})
    assert again.metadata.generation == 2  # metadata-only change keeps generation


def test_scale_subresource(kube):
    _, apps = kube
    apps.create_namespaced_deployment("default", _deployment("scaled", 1))
    scale = apps.read_namespaced_deployment_scale("scaled", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=scaled"
    apps.patch_namespaced_deployment_scale("scaled", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("scaled", "default").spec.replicas == 4
    scale = apps.read_namespaced_deployment_scale("scaled", "default")
    scale.spec.replicas = 2
    apps.replace_namespaced_deployment_scale("scaled", "default", scale)
    assert apps.read_namespaced_deployment("scaled", "default").spec.replicas == 2
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("scaled", "default", {"spec": {"replicas": -1}})
    assert err.value.status == 422


def test_validation_lists_each_bad_field(kube):
    _, apps = kube
    bad = _deployment("Bad_Name", -1)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment("default", bad)
    assert err.value.status == 422
    status = json.loads(err.value.body)
    fields = {c["field"] for c in status["details"]["causes"]}
    assert {"metadata.name", "spec.replicas", "spec.template.metadata.labels"} <= fields
    assert status["reason"] == "Invalid"


def test_service_gets_cluster_ip_and_node_port(kube):
    core, _ = kube
    svc = core.create_namespaced_service("default", {
        "metadata": {"name": "np"}, "spec": {"type": "NodePort", "selector": {"app": "x"},
                                            "ports": [{"port": 80, "targetPort": 8080}]}})
    assert svc.spec.cluster_ip.startswith("10.96.")
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    again = core.patch_namespaced_service("np", "default", {"metadata": {"labels": {"a": "b"}}})
    assert again.spec.cluster_ip == svc.spec.cluster_ip
    assert core.read_namespaced_service("kubernetes", "default").spec.cluster_ip == "10.96.0.1"


def test_unknown_path_and_kind_are_404(control_plane):
    assert control_plane.request("GET", "/api/v1/widgets").status == 404
    assert control_plane.request("GET", "/apis/nope.example.com/v1").status == 404
    r = control_plane.request("GET", "/version")
    assert r.status == 200 and r.json()["minor"] == "32" and "+clusterctl." in r.json()["gitVersion"]
    assert control_plane.request("GET", "/openapi/v2").status == 404
    assert control_plane.request("GET", "/healthz", token=None).body == b"ok"


def test_discovery_lists_subresources_with_their_kinds(control_plane):
    apps = control_plane.request("GET", "/apis/apps/v1").json()
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments/scale"]["kind"] == "Scale" and by_name["deployments/scale"]["group"] == "autoscaling"
    core = {r["name"]: r for r in control_plane.request("GET", "/api/v1").json()["resources"]}
    assert core["pods/eviction"]["kind"] == "Eviction" and core["pods/eviction"]["group"] == "policy"
    assert core["pods"]["shortNames"] == ["po"]
    groups = {g["name"] for g in control_plane.request("GET", "/apis").json()["groups"]}
    assert {"apps", "batch", "discovery.k8s.io", "coordination.k8s.io", "policy", "autoscaling"} <= groups
