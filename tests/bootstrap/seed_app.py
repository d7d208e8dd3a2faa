"""The seed app on a bootstrapped lab cluster: its images, its manifests and a client of its NodePort.

- ``GatewayRegistry``: Debian's ``docker-registry`` on the controller's side of the lab — in this
  machine's namespace, bound to the lab bridge's gateway address, which every lab host routes to
  (the way a person's registry sits next to the controller). The workers are told to trust it
  through the inventory (``node_registries``).
- ``seed_app``: the talk's app — a Deployment of a busybox httpd image on 8080 and a NodePort
  Service in front of it — applied with the real kubectl through the fetched kubeconfig.
- ``BalancedClient``: what a user's external load balancer over all workers' NodePorts does. Each
  request opens a new connection to the next worker in turn; when that connection cannot be
  *opened* (refused, unreachable, connect timeout) the same request goes to the next worker, as a
  load balancer's health check takes a dead backend out. Once a connection is open, anything but a
  complete ``200`` with the expected body (a reset, a short read, a 5xx, a read timeout) is a
  failed request: no retry of an HTTP request that reached a node.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import yaml

NODE_PORT = 30080
REGISTRY_CONFIG = """version: 0.1
log: {{level: error, accesslog: {{disabled: true}}}}
storage: {{filesystem: {{rootdirectory: {root}}}}}
http: {{addr: "{addr}"}}
"""


class GatewayRegistry:
    """``docker-registry`` listening on the lab gateway's address (a free port), data under ``root``."""

    def __init__(self, lab, root: Path) -> None:
        gateway = json.loads(lab.state_path.read_text())["gateway"]
        with socket.socket() as s:
            s.bind((gateway, 0))
            port = s.getsockname()[1]
        self.address = f"{gateway}:{port}"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "registry.yml"
        config.write_text(REGISTRY_CONFIG.format(root=root / "storage", addr=self.address))
        self.process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise AssertionError(f"docker-registry on {self.address} did not start")
                time.sleep(0.1)

    @property
    def worker_vars(self) -> dict:
        """Inventory variables that let the workers pull from it."""
        return {"node_registries": {"allowed": [self.address], "insecure": [self.address]}}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def push_seed_images(registry: GatewayRegistry, base: Path) -> dict[str, str]:
    """``web:v1`` and ``web:v2`` (busybox httpd on 8080 answering ``hello vN``) pushed to ``registry``."""
    from tests.network.test_rollout_lab import push_web_images
    return await push_web_images(registry.address, base)


def seed_app(image: str, *, replicas: int = 4) -> list[dict]:
    """The talk's app: Deployment ``web`` (httpd on 8080, readiness on /) + NodePort Service ``web``."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "NodePort", "selector": {"app": "web"},
                        "ports": [{"port": 80, "targetPort": "http", "nodePort": NODE_PORT}]}}
    return [deployment, service]


def kubectl_apply(kubeconfig: Path, objects: list[dict], dest: Path) -> None:
    dest.write_text(yaml.safe_dump_all(objects))
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(dest)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def get_page(address: str, port: int = NODE_PORT, timeout: float = 5.0) -> str:
    """One request on a new connection; the body of a 200 (anything else raises)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            raise http.client.HTTPException(f"HTTP {resp.status}")
        return body.strip()
    finally:
        conn.close()


def wait_for_page(address: str, want: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = get_page(address)
            if last == want:
                return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"http://{address}:{NODE_PORT}/ never answered {want!r}; last: {last!r}")


class BalancedClient(threading.Thread):
    """Requests in a loop through every worker's NodePort, as an external load balancer would
    (see the module docstring for exactly what counts as a failure)."""

    def __init__(self, addresses: list[str], *, expect: set[str], port: int = NODE_PORT,
                 connect_timeout: float = 1.0, read_timeout: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.addresses, self.expect, self.port = addresses, expect, port
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.answers: list[str] = []
        self.answered_at: list[float] = []                              # time.time() of each answer
        self.failures: list[str] = []
        self.passed_over: dict[str, int] = {a: 0 for a in addresses}   # connections not opened, per node
        self._halt = threading.Event()
        self._next = 0

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def _connect(self) -> socket.socket | None:
        for _ in range(len(self.addresses)):
            address = self.addresses[self._next % len(self.addresses)]
            self._next += 1
            try:
                return socket.create_connection((address, self.port), timeout=self.connect_timeout)
            except OSError:
                self.passed_over[address] += 1
        return None

    def run(self) -> None:
        while not self._halt.is_set():
            sock = self._connect()
            if sock is None:
                self.failures.append(f"{time.time():.2f}: no worker accepted a connection")
                time.sleep(0.05)
                continue
            peer = sock.getpeername()[0]
            try:
                sock.settimeout(self.read_timeout)
                conn = http.client.HTTPConnection(peer, self.port)
                conn.sock = sock
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read().decode().strip()
                if resp.status != 200 or body not in self.expect:
                    self.failures.append(f"{time.time():.2f} {peer}: HTTP {resp.status} {body[:80]!r}")
                else:
                    self.answers.append(body)
                    self.answered_at.append(time.time())
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{time.time():.2f} {peer}: {type(exc).__name__}: {exc}")
            finally:
                sock.close()
