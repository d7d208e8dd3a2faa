"""ApiClient against the real API server: verbs, Status errors, TLS and token checks, watch."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import yaml

from clusterctl.client.errors import AlreadyExists, ApiConnectionError, Conflict, Invalid, NotFound, Unauthorized
from clusterctl.client.kubeconfig import load_kubeconfig
from clusterctl.client.rest import ApiClient
from tests.client.test_kubeconfig import make_ca


def cm(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": labels}, "data": {"k": "v"}}


async def test_crud_selectors_conflict_and_patch_types(api: ApiClient) -> None:
    created = await api.create(cm("one", app="web"))
    await api.create(cm("two", app="db"))
    assert created["metadata"]["resourceVersion"]
    with pytest.raises(AlreadyExists) as exc:
        await api.create(cm("one"))
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    listed = await api.list("configmaps", namespace="default", label_selector="app in (web)")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["one"]
    assert (await api.list("cm", field_selector="metadata.name=two"))["items"][0]["metadata"]["name"] == "two"

    fresh = await api.get("configmaps", "one", namespace="default")
    fresh["data"]["k"] = "v2"
    await api.update(fresh)
    stale = dict(created, data={"k": "stale"})
    with pytest.raises(Conflict) as conflict:
        await api.update(stale)
    assert conflict.value.code == 409

    merged = await api.patch("configmaps", "one", {"data": {"m": "1"}}, namespace="default")
    assert merged["data"] == {"k": "v2", "m": "1"}
    jsonp = await api.patch("configmaps", "one", [{"op": "remove", "path": "/data/m"}], namespace="default", type="json")
    assert jsonp["data"] == {"k": "v2"}
    strategic = await api.patch("configmaps", "one", {"metadata": {"labels": {"tier": "front"}}}, namespace="default", type="strategic")
    assert strategic["metadata"]["labels"] == {"app": "web", "tier": "front"}

    await api.delete("configmaps", "one", namespace="default")
    with pytest.raises(NotFound) as missing:
        await api.get("configmaps", "one", namespace="default")
    assert missing.value.reason == "NotFound" and "one" in missing.value.api_message


async def test_invalid_object_is_422_with_status(api: ApiClient) -> None:
    with pytest.raises(Invalid) as exc:
        await api.create(cm("Not_A_Name"))
    assert exc.value.code == 422 and exc.value.status["kind"] == "Status"


async def test_scale_bind_and_evict(api: ApiClient) -> None:
    await api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await api.create(pod)
    await api.bind("default", "p", "n1")
    assert (await api.get("pods", "p", namespace="default"))["spec"]["nodeName"] == "n1"
    await api.evict("default", "p", grace_period_seconds=0)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                   "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    await api.create(rs)
    scale = await api.scale("replicasets", "rs", 3, namespace="default")
    assert scale["spec"]["replicas"] == 3
    assert (await api.get("replicasets", "rs", namespace="default"))["spec"]["replicas"] == 3


async def test_watch_streams_changes_in_order(api: ApiClient) -> None:
    rv = (await api.list("configmaps", namespace="default"))["metadata"]["resourceVersion"]
    stream = api.watch("configmaps", namespace="default", resource_version=rv, timeout_seconds=60)
    events: list[tuple[str, str]] = []

    async def consume() -> None:
        async for etype, obj in stream:
            events.append((etype, obj["data"].get("k", "")))
            if etype == "DELETED":
                return

    task = asyncio.create_task(consume())
    await api.create(cm("w"))
    await api.patch("configmaps", "w", {"data": {"k": "changed"}}, namespace="default")
    await api.delete("configmaps", "w", namespace="default")
    await asyncio.wait_for(task, 60)
    assert events == [("ADDED", "v"), ("MODIFIED", "changed"), ("DELETED", "changed")]
    assert int(stream.resource_version) > int(rv)


async def test_tls_is_verified_and_tokens_checked(cluster: tuple[ApiClient, Path], tmp_path: Path) -> None:
    _, kubeconfig = cluster
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(make_ca()).decode()
    wrong_ca = tmp_path / "wrong-ca"
    wrong_ca.write_text(yaml.safe_dump(doc))
    async with ApiClient(load_kubeconfig(wrong_ca), retries=0) as client:
        with pytest.raises(ApiConnectionError, match="TLS verification failed"):
            await client.list("namespaces")
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["users"][0]["user"] = {"token": "not-a-token"}
    bad_token = tmp_path / "bad-token"
    bad_token.write_text(yaml.safe_dump(doc))
    async with ApiClient(load_kubeconfig(bad_token)) as client:
        with pytest.raises(Unauthorized) as exc:
            await client.list("namespaces")
        assert exc.value.code == 401


async def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    from tests.client.live import free_port

    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    from clusterctl.client.kubeconfig import ClusterCredentials

    client = ApiClient(ClusterCredentials(server=f"http://127.0.0.1:{free_port()}"), retries=3, backoff=0.5, sleep=fake_sleep)
    async with client:
        with pytest.raises(ApiConnectionError, match="after 4 attempts"):
            await client.get("pods", "x", namespace="default")
    assert sleeps == [0.5, 1.0, 2.0]


async def test_discovery_finds_kinds_the_static_table_lacks(api: ApiClient) -> None:
    from clusterctl.client.resources import ResourceTable

    api.resources = ResourceTable([])  # forget every built-in kind
    await api.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                      "spec": {"selector": {"matchLabels": {"a": "b"}},
                               "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    rt = await api.resource_type("deploy")
    assert (rt.group, rt.version, rt.plural, rt.namespaced) == ("apps", "v1", "deployments", True)
    assert [d["metadata"]["name"] for d in (await api.list("deployments.apps"))["items"]] == ["d"]
    with pytest.raises(NotFound, match="doesn't have a resource type 'gizmos'"):
        await api.list("gizmos")


async def test_watch_bookmarks_advance_the_resume_point(tmp_path: Path) -> None:
    from tests.client.live import control_plane

    async with control_plane(tmp_path, timings={"bookmark_interval": 0.2}) as (api, _):
        rv = (await api.list("configmaps", namespace="default"))["metadata"]["resourceVersion"]
        await api.create(cm("elsewhere") | {"metadata": {"name": "elsewhere", "namespace": "kube-public"}})
        stream = api.watch("configmaps", namespace="default", resource_version=rv, timeout_seconds=60, bookmarks=True)

        async def first_event() -> tuple[str, dict]:
            async for event in stream:
                return event
            raise AssertionError("stream ended without a bookmark")

        etype, obj = await asyncio.wait_for(first_event(), 30)  # a bookmark every 0.2 s; 30 s for a loaded machine
        await stream.aclose()
        assert etype == "BOOKMARK" and obj["metadata"]["resourceVersion"] == stream.resource_version
        assert int(stream.resource_version) >= int(rv)
