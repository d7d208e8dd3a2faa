"""``clusterctl up``: a whole cluster on this machine, in the foreground (see ``local_cluster``).

Prints a status line while it starts, then the kubeconfig path and how to use it, and runs until
Ctrl-C (or SIGTERM), which stops the nodes, their pods, the registry and the control plane and
removes the network. A second ``up`` on the same ``--data-dir`` resumes the same cluster.
``--demo`` builds a busybox httpd image (Debian's busybox-static, pushed with
``clusterctl image push`` into the cluster's own registry), deploys it in namespace ``demo``
behind a NodePort and prints the ``curl`` command that reaches it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clusterctl.errors import UsageError
from clusterctl.local_cluster import LocalCluster

DEFAULT_DIR = Path(os.environ.get("CLUSTERCTL_UP_DIR", str(Path.home() / ".clusterctl" / "up")))
DEMO_NAMESPACE = "demo"
DEMO_HTML = "<html><body><h1>Hello from clusterctl</h1><p>served by busybox httpd in a pod</p></body></html>\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterctl up", description="a whole cluster on this machine in the foreground: control plane + N nodes",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  clusterctl up                         # 2 nodes, data in ~/.clusterctl/up\n"
                                       "  clusterctl up --nodes 3 --data-dir ./c1 --port 7443\n  clusterctl up --demo                  # and a demo app to curl\n"
                                       "then, in another terminal:\n  export KUBECONFIG=~/.clusterctl/up/kubeconfig\n  clusterctl get nodes\n")
    p.add_argument("--nodes", type=int, default=2, help="number of node agents (default 2)")
    p.add_argument("--data-dir", default=str(DEFAULT_DIR), help=f"cluster state (default {DEFAULT_DIR})")
    p.add_argument("--port", type=int, default=None, help="API server port on 127.0.0.1 (default: the data dir's, else 6443 if free, else any free port)")
    p.add_argument("--demo", action="store_true", help="deploy a demo web app in namespace 'demo' and print how to curl it")
    p.add_argument("--ready-timeout", type=float, default=90.0, help=argparse.SUPPRESS)
    return p


class StatusLine:
    """One line rewritten in place on a terminal; plain lines otherwise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        text = f"[{time.monotonic() - self.t0:5.1f}s] {message}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def push_httpd_image(ref: str, page: str, *, timeout: float = 15.0) -> str:
    """Build a busybox httpd image (port 8080, serving ``page`` at /) from Debian's busybox-static
    with ``clusterctl image push`` and push it as ``ref``; returns ``ref``."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).exists():
        raise UsageError("an httpd image needs Debian's busybox-static (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        for tool in ("sh", "httpd", "ls", "cat", "echo", "env", "hostname", "sleep", "wget"):
            (root / "bin" / tool).symlink_to("busybox")
        (root / "www").mkdir()
        (root / "www" / "index.html").write_text(page)
        (root / "tmp").mkdir()
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run([sys.executable, "-m", "clusterctl", "image", "push", str(root), ref,
                                     "--cmd", '["/bin/httpd", "-f", "-v", "-p", "8080", "-h", "/www"]', "--port", "8080"],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                return ref
            if time.monotonic() > deadline:
                raise UsageError(f"could not push {ref}: {result.stderr.strip() or result.stdout.strip()}")
            time.sleep(0.2)  # the registry may still be starting


def build_demo_image(cluster: LocalCluster) -> str:
    """The demo's image in the cluster's own registry."""
    if cluster.registry_address is None:
        raise UsageError("--demo needs a local registry (apt-get install docker-registry)")
    return push_httpd_image(f"{cluster.registry_address}/demo-httpd:v1", DEMO_HTML)


async def deploy_demo(cluster: LocalCluster, image: str, status) -> str:
    """Namespace ``demo``, Deployment + NodePort Service ``web``; returns the curl command."""
    from clusterctl.client.errors import AlreadyExists
    from clusterctl.client.rest import ApiClient
    from clusterctl.kubectl.apply import deployment_object
    async with ApiClient.from_kubeconfig(str(cluster.kubeconfig)) as c:
        for obj in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}},
                    deployment_object("web", [image], 2, 8080, namespace=DEMO_NAMESPACE),
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": DEMO_NAMESPACE, "labels": {"app": "web"}},
                     "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}]}}):
            try:
                await c.create(obj)
            except AlreadyExists:
                pass
        svc = await c.get("services", "web", namespace=DEMO_NAMESPACE)
        node_port = svc["spec"]["ports"][0]["nodePort"]
        status("demo: waiting for the web pods")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dep = await c.get("deployments", "web", namespace=DEMO_NAMESPACE)
            if (dep.get("status") or {}).get("availableReplicas", 0) >= 1:
                break
            await asyncio.sleep(0.1)
    address = next(iter(cluster.node_addresses().values()))
    url = f"http://{address}:{node_port}/"
    # an available pod is not yet a served NodePort: the Endpoints controller and then the node's
    # proxy have to see it first (until then the proxy resets the connection). The command is
    # printed once it works, so a curl typed at once is answered.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not await asyncio.to_thread(_answers, url):
        await asyncio.sleep(0.2)
    return f"curl {url}"


def _answers(url: str) -> bool:
    """Whether ``url`` (the demo's NodePort on a node of this machine) answers 200."""
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status == 200
    except OSError:
        return False


async def _up(args: argparse.Namespace) -> int:
    if args.nodes < 1:
        raise UsageError("--nodes must be at least 1")
    status = StatusLine()
    cluster = LocalCluster(Path(args.data_dir), nodes=args.nodes, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    t0 = time.monotonic()
    try:
        starting = asyncio.create_task(cluster.start(status, ready_timeout=args.ready_timeout))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            status("interrupted while starting")
            status.done()
            return 130
        stopper.cancel()
        starting.result()
        ready_s = time.monotonic() - t0
        status(f"cluster up: {args.nodes} node(s) Ready in {ready_s:.1f}s")
        status.done()
        lines = [f"kubeconfig: {cluster.kubeconfig}",
                 f"  export KUBECONFIG={cluster.kubeconfig}",
                 "  clusterctl get nodes -o wide      (kubectl works too)",
                 "nodes: " + ", ".join(f"{n} {a}" for n, a in cluster.node_addresses().items())]
        if cluster.registry_address:
            lines.append(f"registry: {cluster.registry_address} (every node pulls from it, and from 127.0.0.1:5055 if you run one)")
        print("\n".join(lines), flush=True)
        if args.demo:
            status("demo: building and pushing the image")
            image = build_demo_image(cluster)
            curl = await deploy_demo(cluster, image, status)
            status("demo: ready")
            status.done()
            print(f"demo: namespace {DEMO_NAMESPACE}, deployment web behind a NodePort:\n  {curl}", flush=True)
        print("Ctrl-C stops the cluster; `clusterctl up` on the same data dir resumes it.", flush=True)
        await stop.wait()
        return 0
    finally:
        started = cluster.cp_process is not None or cluster.node_procs
        if started:
            print("\nstopping...", file=sys.stderr, flush=True)
        await cluster.stop()
        if started:
            print("stopped", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(_up(args))
