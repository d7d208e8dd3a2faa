"""Pods from a private registry: a real agent, a real API server, real kubectl, a real registry with htpasswd.

A pod's ``imagePullSecrets`` (made by the API or by ``kubectl create secret docker-registry``) let
it run; without them the pod shows ErrImagePull/ImagePullBackOff saying the registry wants
credentials (also once the image is in the node's cache); with a wrong password, that the
credentials were refused; a missing Secret is a
Warning event naming it; the namespace's ServiceAccount lends its ``imagePullSecrets`` to pods that
name none. The password never shows in the agent's log, the pod's status or events.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from node_runtime.harness import FAST_TIMINGS, AgentHandle, wait_pod
from node_runtime.images.build import ImageSpec, build_image, push_image
from node_runtime.images.registry import RegistryClient, RegistryPolicy
from node_runtime.images.registry_process import start_registry
from tests.node_runtime.rootfs import make_busybox_rootfs

USER, PASSWORD = "deployer", "pw-agent-91c4e7-secret"
WAIT = 90.0   # generous: a loaded CI machine runs this too


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("private-registry"), users={USER: PASSWORD}, timeout=60)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def private_image(private_registry, tmp_path_factory):
    root = make_busybox_rootfs(tmp_path_factory.mktemp("app"), {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
    built = build_image(root, ImageSpec(cmd=["/bin/sh", "-c", "while true; do sleep 1; done"]))
    name = f"{private_registry.address}/team/app:v1"

    async def push():
        async with RegistryClient(RegistryPolicy(credentials={private_registry.address: (USER, PASSWORD)})) as client:
            await push_image(built, name, client)

    asyncio.run(push())
    return name


@pytest.fixture
async def private_agent(control_plane, private_registry, tmp_path, node_name):
    # ImagePullBackOff lasts up to 3 s (not 1): long enough to be seen by polling on a loaded machine
    timings = {**FAST_TIMINGS, "image_pull_backoff_max": 3.0}
    handle = AgentHandle(control_plane, private_registry, tmp_path / "agent", node_name, timings=timings)
    await handle.start()
    yield handle
    await handle.close()


def regcred(name: str, server: str, password: str, namespace: str = "default") -> dict:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    config = {"auths": {f"http://{server}/v2/": {"username": USER, "password": password, "auth": auth}}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}


def waiting(pod: dict) -> dict:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting") or {}


def running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


async def events_about(client, namespace: str, pod: str) -> list[dict]:
    events = (await client.list("events", namespace=namespace))["items"]
    return [e for e in events if e["involvedObject"].get("name") == pod]


async def wait_event(client, namespace: str, pod: str, reason: str, timeout: float = WAIT) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [e for e in await events_about(client, namespace, pod) if e.get("reason") == reason]
        if found:
            return found[0]
        assert loop.time() < deadline, f"no {reason} event for {namespace}/{pod} in {timeout}s"
        await asyncio.sleep(0.2)


async def test_pull_secrets_run_refuse_and_report(private_agent, private_registry, private_image, caplog):
    caplog.set_level(logging.DEBUG)
    client = private_agent.client
    sfx = uuid.uuid4().hex[:6]
    good, bad = f"regcred-{sfx}", f"stale-{sfx}"
    await client.create(regcred(good, private_registry.address, PASSWORD))
    await client.create(regcred(bad, private_registry.address, "wrong-password-" + sfx))
    container = [{"name": "app", "image": private_image}]
    pods = {"ok": f"ok-{sfx}", "none": f"none-{sfx}", "wrong": f"wrong-{sfx}", "missing": f"missing-{sfx}"}
    await client.create(private_agent.pod(pods["ok"], container, imagePullSecrets=[{"name": good}]))
    await client.create(private_agent.pod(pods["none"], container))
    await client.create(private_agent.pod(pods["wrong"], container, imagePullSecrets=[{"name": bad}]))
    await client.create(private_agent.pod(pods["missing"], container, imagePullSecrets=[{"name": f"nosuch-{sfx}"}]))

    await wait_pod(client, "default", pods["ok"], running, timeout=WAIT)
    # now the image is in the node's cache; a pod without credentials still may not use it
    pods["late"] = f"late-{sfx}"
    await client.create(private_agent.pod(pods["late"], [{**container[0], "imagePullPolicy": "IfNotPresent"}]))
    late = await wait_pod(client, "default", pods["late"],
                          lambda p: waiting(p).get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=WAIT)
    assert f"registry {private_registry.address} requires credentials" in waiting(late)["message"]

    none = await wait_pod(client, "default", pods["none"],
                          lambda p: waiting(p).get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=WAIT)
    assert f"registry {private_registry.address} requires credentials" in waiting(none)["message"]
    assert none["status"]["phase"] == "Pending"

    wrong = await wait_pod(client, "default", pods["wrong"],
                           lambda p: waiting(p).get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=WAIT)
    for state in (waiting(wrong), waiting(await wait_pod(client, "default", pods["wrong"],
                                                           lambda p: waiting(p).get("reason") == "ImagePullBackOff",
                                                           timeout=WAIT))):
        assert f"registry {private_registry.address} refused the credentials" in state["message"], state
        assert bad in state["message"] and USER not in state["message"]   # names the Secret, not its content

    event = await wait_event(client, "default", pods["missing"], "FailedToRetrieveImagePullSecret")
    assert event["type"] == "Warning" and f"nosuch-{sfx}" in event["message"]
    missing = await wait_pod(client, "default", pods["missing"],
                             lambda p: waiting(p).get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=WAIT)
    assert "requires credentials" in waiting(missing)["message"]   # went on anonymously, as kubelet does

    # the password (or its base64 forms) is nowhere: agent log, pod statuses, events
    secret_forms = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), f"wrong-password-{sfx}"]
    seen = [r.getMessage() for r in caplog.records]
    assert any(f"nosuch-{sfx}" in m for m in seen)   # the log did capture the agent's warnings
    for name in pods.values():
        pod = await client.get("pods", name, namespace="default")
        seen.append(json.dumps(pod.get("status")))
        seen.extend(json.dumps(e) for e in await events_about(client, "default", name))
    for text in seen:
        for form in secret_forms:
            assert form not in text


async def test_service_account_pull_secrets_and_kubectl_and_clusterctl_secrets(private_agent, private_registry, private_image, control_plane):
    client = private_agent.client
    ns = f"ps-{uuid.uuid4().hex[:6]}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    # the real kubectl makes the Secret
    out = subprocess.run(["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "-n", ns, "create", "secret",
                          "docker-registry", "kubectl-cred", f"--docker-server={private_registry.address}",
                          f"--docker-username={USER}", f"--docker-password={PASSWORD}", "--docker-email=dev@example.invalid"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    secret = await client.get("secrets", "kubectl-cred", namespace=ns)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    # clusterctl's own verb makes the same Secret as kubectl's
    out = subprocess.run([str(Path(sys.executable).with_name("clusterctl")), "--kubeconfig", str(control_plane.kubeconfig),
                          "-n", ns, "create", "secret", "docker-registry", "clusterctl-cred",
                          f"--docker-server={private_registry.address}", f"--docker-username={USER}",
                          f"--docker-password={PASSWORD}", "--docker-email=dev@example.invalid"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ours = await client.get("secrets", "clusterctl-cred", namespace=ns)
    assert ours["type"] == secret["type"]
    assert json.loads(base64.b64decode(ours["data"][".dockerconfigjson"])) == \
        json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns},
                         "imagePullSecrets": [{"name": "kubectl-cred"}]})

    pod = private_agent.pod("via-sa", [{"name": "app", "image": private_image}])
    pod["metadata"]["namespace"] = ns
    created = await client.create(pod, namespace=ns)
    assert created["spec"]["imagePullSecrets"] == [{"name": "kubectl-cred"}]   # admitted from the ServiceAccount
    await wait_pod(client, ns, "via-sa", running, timeout=WAIT)
    # pod specs are immutable: a PUT of the body as first sent (no imagePullSecrets) keeps the admitted list
    current = await client.get("pods", "via-sa", namespace=ns)
    del current["spec"]["imagePullSecrets"]
    current["metadata"].setdefault("labels", {})["touched"] = "yes"
    current["metadata"].pop("resourceVersion")   # unconditional: the agent may write status meanwhile
    updated = await client.update(current, namespace=ns)
    assert updated["spec"]["imagePullSecrets"] == [{"name": "kubectl-cred"}]
    assert updated["metadata"]["labels"]["touched"] == "yes"

    # clusterctl's Secret pulls too (Always: through the registry, not from the cache)
    mine = private_agent.pod("via-clusterctl", [{"name": "app", "image": private_image, "imagePullPolicy": "Always"}],
                             imagePullSecrets=[{"name": "clusterctl-cred"}])
    mine["metadata"]["namespace"] = ns
    await client.create(mine, namespace=ns)
    await wait_pod(client, ns, "via-clusterctl", running, timeout=WAIT)

    # a pod naming its own pull secrets keeps exactly those (and a missing one there fails the pull)
    own = private_agent.pod("own-list", [{"name": "app", "image": private_image, "imagePullPolicy": "Always"}],
                            imagePullSecrets=[{"name": "nosuch"}])
    own["metadata"]["namespace"] = ns
    created = await client.create(own, namespace=ns)
    assert created["spec"]["imagePullSecrets"] == [{"name": "nosuch"}]
    failed = await wait_pod(client, ns, "own-list", lambda p: waiting(p).get("reason") in ("ErrImagePull", "ImagePullBackOff"),
                            timeout=WAIT)
    assert "requires credentials" in waiting(failed)["message"]


def regcred_keys(name: str, keys: dict[str, str], namespace: str = "default") -> dict:
    """A dockerconfigjson Secret with one entry per key (``{key: password}``)."""
    auths = {key: {"auth": base64.b64encode(f"{USER}:{password}".encode()).decode()} for key, password in keys.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps({"auths": auths}).encode()).decode()}}


async def test_a_key_with_a_path_serves_only_its_repositories_and_wins_over_the_host(
        private_agent, private_registry, private_image):
    """Keys are matched as kubelet matches them: ``<registry>/team`` serves ``<registry>/team/app``
    and beats a key for the whole registry (here holding a wrong password); ``<registry>/other``
    does not serve it at all."""
    client = private_agent.client
    sfx = uuid.uuid4().hex[:6]
    registry = private_registry.address
    specific, elsewhere = f"paths-{sfx}", f"other-{sfx}"
    await client.create(regcred_keys(specific, {f"http://{registry}/v2/": "wrong-for-the-host-" + sfx,
                                                f"{registry}/team": PASSWORD}))
    await client.create(regcred_keys(elsewhere, {f"{registry}/other": PASSWORD}))
    container = [{"name": "app", "image": private_image}]
    ok, denied = f"team-{sfx}", f"other-{sfx}"
    await client.create(private_agent.pod(ok, container, imagePullSecrets=[{"name": specific}]))
    await client.create(private_agent.pod(denied, container, imagePullSecrets=[{"name": elsewhere}]))
    await wait_pod(client, "default", ok, running, timeout=WAIT)
    pod = await wait_pod(client, "default", denied,
                         lambda p: waiting(p).get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=WAIT)
    assert f"registry {registry} requires credentials" in waiting(pod)["message"], waiting(pod)
