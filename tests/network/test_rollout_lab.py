"""The seed story on three lab nodes, end to end with real agents, proxies and DNS.

A real control plane (on the lab bridge's address), the scheduler and the controllers run here;
each lab host runs a real node agent with the real pod network, Service proxy and cluster DNS
(``lab_agent.py``); images come from a registry inside h1. Ten replicas of web:v1 sit behind a
NodePort Service; a client outside the cluster requests in a loop across all three nodes while
the Deployment rolls to v2 with maxUnavailable 1: no request may fail.
"""

from __future__ import annotations

import asyncio
import json
import http.client
import os
import sysconfig
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from clusterctl.client.rest import ApiClient
from tests.network.test_bridge import HOST_PYTHON, in_pod, run

LAB_AGENT = str(Path(__file__).with_name("lab_agent.py"))
# the agent runs on the host's python3 (the venv's interpreter lives under /root, private in a lab
# host) with this environment's packages; both are CPython 3.11
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
DNS_IP = "10.96.0.10"
NODE_PORT = 30123
AGENT_TIMINGS = {"lease_renew": 1.0, "status_update": 1.0, "crashloop_base": 0.2, "crashloop_max": 1.0,
                 "image_pull_backoff_base": 0.2, "image_pull_backoff_max": 1.0, "probe_scale": 0.2, "grace_scale": 0.1,
                 "configmap_sync": 1.0}
REGISTRY_CONFIG = """version: 0.1
log: {{level: error, accesslog: {{disabled: true}}}}
storage: {{filesystem: {{rootdirectory: /var/lib/clusterctl/registry}}}}
http: {{addr: "{addr}"}}
"""


def lab_control_plane(tmp: Path, gw: str):
    """A real control plane listening on the lab bridge's address (the hosts reach it there)."""
    import dataclasses

    from clusterctl.api.testing import FAST_TIMINGS, ControlPlane, start_control_plane

    @dataclasses.dataclass
    class GatewayControlPlane(ControlPlane):
        host: str = "127.0.0.1"

        @property
        def url(self) -> str:
            return f"https://{self.host}:{self.port}"

    cp = start_control_plane(tmp, timings=FAST_TIMINGS, extra={"bind_address": gw, "tls_names": [gw]}, start=False)
    return GatewayControlPlane(**{f.name: getattr(cp, f.name) for f in dataclasses.fields(cp)}, host=gw).start()


def gateway_of(lab) -> str:
    return json.loads(lab.state_path.read_text())["gateway"]


async def push_web_images(registry: str, base: Path) -> dict[str, str]:
    from node_runtime.images.build import ImageSpec, build_image, push_image
    from node_runtime.images.registry import RegistryClient, RegistryPolicy
    from tests.node_runtime.rootfs import make_busybox_rootfs
    out = {}
    async with RegistryClient(RegistryPolicy(insecure=frozenset({registry}))) as client:
        for tag in ("v1", "v2"):
            root = make_busybox_rootfs(base / tag, {"www/index.html": f"hello {tag}\n", "etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
            await push_image(build_image(root, ImageSpec(cmd=["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])), f"{registry}/web:{tag}", client)
            out[tag] = f"{registry}/web:{tag}"
    return out


def start_registry(lab) -> str:
    h1 = lab.host("h1")
    addr = f"{h1.ip}:5000"
    (h1.data_dir / "registry.yml").write_text(REGISTRY_CONFIG.format(addr=addr))
    subprocess.Popen(lab.exec_argv("h1", "docker-registry", "serve", "/var/lib/clusterctl/registry.yml"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{addr}/v2/", timeout=5)
            return addr
        except OSError:
            time.sleep(0.1)
    raise AssertionError("registry in h1 did not start")


class LabAgents:
    def __init__(self, lab, cp, registry: str):
        self.lab, self.procs = lab, {}
        ca = Path(cp.ca_file).read_bytes()
        for h in lab.hosts:
            (h.data_dir / "ca.crt").write_bytes(ca)
            cfg = {"node_name": h.name, "data_dir": "/var/lib/clusterctl/agent", "server": cp.url,
                   "token": cp.node_token(h.name), "ca_file": "/var/lib/clusterctl/ca.crt", "address": h.ip,
                   "listen_address": h.ip, "cluster_dns": DNS_IP, "timings": AGENT_TIMINGS,
                   "registries": {"allowed": [registry], "insecure": [registry]}}
            (h.data_dir / "agent.yaml").write_text(yaml.safe_dump(cfg))
            log = open(h.data_dir / "agent.log", "ab")
            self.procs[h.name] = subprocess.Popen(
                lab.exec_argv(h.name, HOST_PYTHON, LAB_AGENT, "/var/lib/clusterctl/agent.yaml"),
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": SITE_PACKAGES})

    def logs(self) -> str:
        def interesting(text: str) -> str:
            lines = [ln for ln in text.splitlines() if "probe" not in ln and "GET /" not in ln]
            return "\n".join(lines[-40:])
        return "\n".join(f"--- {h.name}\n" + interesting((h.data_dir / "agent.log").read_text()) for h in self.lab.hosts)

    def stop(self, timeout: float = 30.0) -> None:
        for h in self.lab.hosts:
            run(self.lab, h.name, "sh", "-c", f"pkill -TERM -f {LAB_AGENT} || true", check=False)
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass


class Client(threading.Thread):
    """Requests in a loop, a new connection each, over every node's NodePort.

    A failure records when, at which stage (connect, headers, body) and from which local port,
    and at once snapshots every node's sockets and the proxies' connections (``on_failure``)."""

    def __init__(self, urls: list[str], on_failure=None):
        super().__init__(daemon=True)
        self.urls, self.results, self.failures = urls, [], []
        self.stop_after: int | None = None
        self.on_failure = on_failure

    def run(self) -> None:
        i = 0
        while self.stop_after is None or len(self.results) + len(self.failures) < self.stop_after:
            url = self.urls[i % len(self.urls)]
            i += 1
            host, port = url.split("/")[2].split(":")
            # a request never answered is a hang: 20 s tells it from a loaded machine's slow one
            conn = http.client.HTTPConnection(host, int(port), timeout=20)
            stage, local = "connect", None
            try:
                conn.connect()
                local = conn.sock.getsockname()[1]
                stage = "headers"
                conn.request("GET", "/")
                resp = conn.getresponse()
                stage = "body"
                self.results.append(resp.read().decode().strip())
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{time.strftime('%H:%M:%S')} #{len(self.results)} {url} port {local} at {stage}: {exc!r}")
                if self.on_failure is not None:
                    self.on_failure()
            finally:
                conn.close()


def deployment(image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            # minReadySeconds: each step of the rollout lasts a second at least, so the client overlaps
            # it with many requests even when a crowded machine slows the client down
            "spec": {"replicas": 10, "minReadySeconds": 1, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         # a pod keeps serving a while after it leaves the Endpoints (preStop sleep, as a
                         # real zero-downtime Deployment does): a request a proxy sent it just before it
                         # saw the removal is still answered
                         "terminationGracePeriodSeconds": 20,
                         "containers": [{"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}],
                                         "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                                         "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}}}


async def wait_for(what, probe, timeout=60.0, interval=0.2):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def ready_pods(pods: list[dict], image: str | None = None) -> list[dict]:
    out = []
    for p in pods:
        st = p.get("status") or {}
        if p["metadata"].get("deletionTimestamp") or not any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []):
            continue
        if image and p["spec"]["containers"][0]["image"] != image:
            continue
        out.append(p)
    return out


@pytest.mark.lab
@pytest.mark.timeout(600)
async def test_rollout_behind_a_node_port_drops_no_request(lab_factory, tmp_path):
    from clusterctl.controllers.manager import ControllerManagerConfig, run_controllers
    from clusterctl.scheduler.scheduler import Scheduler, SchedulerConfig

    lab = lab_factory(3)
    gw = gateway_of(lab)
    registry = start_registry(lab)
    images = await push_web_images(registry, tmp_path / "images")
    cp = lab_control_plane(tmp_path / "cp", gw)
    api = ApiClient.from_kubeconfig(str(cp.kubeconfig))
    tasks = [asyncio.create_task(Scheduler(api, SchedulerConfig(initial_backoff=0.05, max_backoff=0.2)).run()),
             asyncio.create_task(run_controllers(api, config=ControllerManagerConfig(leader_elect=False)))]
    agents = LabAgents(lab, cp, registry)
    try:
        async def nodes_ready():
            nodes = (await api.list("nodes"))["items"]
            ok = [n for n in nodes if (n.get("spec") or {}).get("podCIDR")
                  and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])]
            return len(ok) == 3 and ok
        try:
            await wait_for("3 Ready nodes with pod CIDRs", nodes_ready, timeout=60)
        except AssertionError:
            raise AssertionError(agents.logs())
        await api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                          "spec": {"type": "NodePort", "selector": {"app": "web"},
                                   "ports": [{"port": 80, "targetPort": "http", "nodePort": NODE_PORT}]}})
        await api.create(deployment(images["v1"]))

        async def ten_ready(image):
            pods = (await api.list("pods", namespace="default", label_selector="app=web"))["items"]
            r = ready_pods(pods, image)
            return len(r) == 10 and len(pods) == 10 and r
        try:
            pods = await wait_for("10 ready v1 pods", lambda: ten_ready(images["v1"]), timeout=120)
        except AssertionError:
            raise AssertionError(agents.logs())
        assert len({p["spec"]["nodeName"] for p in pods}) == 3
        assert len({p["status"]["podIP"] for p in pods}) == 10
        svc = await api.get("services", "web", namespace="default")
        # from inside a real pod on one node: another node's pod by IP, the ClusterIP, the DNS name
        here = next(p for p in pods if p["spec"]["nodeName"] == "h1")
        there = next(p for p in pods if p["spec"]["nodeName"] != "h1")
        netns = f"clusterctl-h1-{here['metadata']['uid'].replace('-', '')[:8]}"
        wget = ("timeout", "20", "busybox", "wget", "-q", "-O", "-")
        assert in_pod(lab, "h1", netns, *wget, f"http://{there['status']['podIP']}:8080/").stdout == "hello v1\n"
        assert in_pod(lab, "h1", netns, *wget, f"http://{svc['spec']['clusterIP']}/").stdout == "hello v1\n"
        answer = in_pod(lab, "h1", netns, "timeout", "20", "busybox", "nslookup", "web.default.svc.cluster.local", DNS_IP).stdout
        assert svc["spec"]["clusterIP"] in answer, answer

        snapshots: list[str] = []

        def snapshot() -> None:                   # the sockets of a failed request, while they still exist
            for h in lab.hosts:
                snapshots.append(f"--- {h.name} sockets at {time.strftime('%H:%M:%S')}\n"
                                 + run(lab, h.name, "ss", "-tnio", check=False).stdout
                                 + run(lab, h.name, "sh", "-c", "for ns in $(ip netns list | cut -d' ' -f1); do echo \"## pod netns $ns\";"
                                       " ip netns exec $ns ss -tanpi; done", check=False).stdout)
                run(lab, h.name, "sh", "-c", f"pkill -USR1 -f {LAB_AGENT} || true", check=False)
        client = Client([f"http://{h.ip}:{NODE_PORT}/" for h in lab.hosts], on_failure=snapshot)
        client.start()
        try:
            await wait_for("first answers", lambda: asyncio.sleep(0, len(client.results) >= 50), timeout=120)
        except AssertionError:
            raise AssertionError(f"{client.failures[:3]}\n{agents.logs()}")
        started = len(client.results) + len(client.failures)
        # a merge patch replaces the containers list: send the whole v2 template
        await api.patch("deployments", "web", {"spec": {"template": deployment(images["v2"])["spec"]["template"]}}, namespace="default")
        await wait_for("10 ready v2 pods", lambda: ten_ready(images["v2"]), timeout=240)
        during = len(client.results) + len(client.failures) - started
        # 200 more after the rollout (a count, not a total: at load 17 the client makes a few
        # requests a second, and a total of 1,000 could outlast the join)
        client.stop_after = len(client.results) + len(client.failures) + 200
        await asyncio.get_running_loop().run_in_executor(None, client.join, 300)
        assert not client.is_alive(), f"the client made {len(client.results) + len(client.failures)} of {client.stop_after} requests in 300 s"
        if client.failures:
            await asyncio.sleep(0.5)              # the agents log their proxy connections (SIGUSR1)
            full_logs = "\n".join(f"--- {h.name}\n" + (h.data_dir / "agent.log").read_text() for h in lab.hosts)
            Path(os.environ.get("ROLLOUT_DIAG", "/dev/null")).write_text(
                f"{len(client.results)} ok, {len(client.failures)} failed\n" + "\n".join(client.failures[:5] + client.failures[-5:])
                + "\n" + "\n".join(snapshots) + "\n" + full_logs)
        assert client.failures == [], (len(client.results), len(client.failures), client.failures[:5])
        assert len(client.results) == client.stop_after
        # the rollout ran under traffic: requests all through it, answered by the old pods and by
        # the new ones. (A count alone depends on the machine: the client thread shares this
        # process's GIL with the scheduler and controllers, and at load 17 it made 117 requests in
        # a rollout where a quiet machine makes several hundred.)
        window = client.results[started:started + during]
        assert during >= 50, f"only {during} requests while the rollout ran"
        assert {"hello v1", "hello v2"} <= set(window), f"the requests during the rollout saw only {set(window)}"
        print(f"rollout: {len(client.results)} requests, {during} during the rollout, 0 failed")

        # agents stopped with their pods: nothing of the pod network is left on any node
        agents.stop()
        for h in lab.hosts:
            assert run(lab, h.name, "ip", "netns", "list").stdout.strip() == "", h.name
            links = run(lab, h.name, "ip", "-o", "link").stdout
            assert ": cc" not in links and ": vc" not in links, links
            assert "10.96." not in run(lab, h.name, "ip", "addr").stdout
            assert run(lab, h.name, "ip", "route", "show", "proto", "76").stdout.strip() == ""
        assert client.results[0] == "hello v1" and client.results[-1] == "hello v2"
        assert set(client.results) == {"hello v1", "hello v2"}
        assert client.results[-100:] == ["hello v2"] * 100
    finally:
        agents.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()
        cp.stop()
