"""``ApiClient`` failing over between API servers, against a real control plane.

The kubeconfig keeps ``server:`` for kubectl and lists every server in the cluster's
``clusterctl.io/servers`` extension. In front of the real server sit stand-ins for the ways a
server can be gone: a port nothing listens on (refused), a listener that hangs up on every
connection (the server died mid-request), a listener whose accept queue is full (connections
time out, like a host that is powered off) and one that answers ``403`` (a real answer, which
must not make the client switch).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from clusterctl.client.errors import Forbidden
from clusterctl.client.kubeconfig import SERVERS_EXTENSION, load_kubeconfig
from clusterctl.client.rest import ApiClient
from tests.client.live import free_port


def with_servers(kubeconfig: Path, dest: Path, servers: list[str], *, server: str | None = None) -> Path:
    """A copy of ``kubeconfig`` whose cluster lists ``servers`` (``server:`` = ``server`` or the first)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    cluster["server"] = server or servers[0]
    cluster["extensions"] = [{"name": SERVERS_EXTENSION, "extension": {"servers": servers}}]
    dest.write_text(yaml.safe_dump(doc))
    return dest


class HangUp:
    """A TCP listener on loopback that closes every connection it accepts, counting them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()
        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def test_a_refused_first_server_fails_over_for_every_verb_and_sticks(cluster, tmp_path):
    api, kubeconfig = cluster
    real = api.server
    dead = f"https://127.0.0.1:{free_port()}"
    kc = with_servers(kubeconfig, tmp_path / "kc", [dead, real])
    assert load_kubeconfig(str(kc)).all_servers() == [dead, real]
    async with ApiClient.from_kubeconfig(str(kc), sleep=lambda _s: asyncio.sleep(0)) as client:
        assert client.server == dead
        # POST is not idempotent, but nothing reached the refused server: it goes to the next one
        created = await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "failover"}})
        assert created["metadata"]["name"] == "failover"
        assert client.server == real
        names = [n["metadata"]["name"] for n in (await client.list("namespaces"))["items"]]
        assert "failover" in names


async def test_a_server_that_hangs_up_is_left_and_not_tried_again(cluster, tmp_path):
    api, kubeconfig = cluster
    hangup = HangUp()
    gone = await hangup.start()
    kc = with_servers(kubeconfig, tmp_path / "kc", [gone, api.server])
    try:
        async with ApiClient.from_kubeconfig(str(kc), sleep=lambda _s: asyncio.sleep(0)) as client:
            await client.get("namespaces", "default")
            assert client.server == api.server
            seen = hangup.accepted
            assert seen >= 1
            for _ in range(5):
                await client.get("namespaces", "default")
            assert hangup.accepted == seen, "the client went back to the server that hung up"
    finally:
        hangup.close()


async def test_a_server_whose_connections_time_out_is_passed_over_after_the_connect_timeout(cluster, tmp_path):
    api, kubeconfig = cluster
    # a listener that never accepts, with its queue filled: the kernel drops further SYNs
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(blackhole.getsockname())
        fillers.append(s)
    kc = with_servers(kubeconfig, tmp_path / "kc", [f"https://127.0.0.1:{blackhole.getsockname()[1]}", api.server])
    try:
        # 2 s, not 0.5: the live server's connect + TLS handshake must fit in it on a loaded machine too
        async with ApiClient.from_kubeconfig(str(kc), connect_timeout=2.0) as client:
            started = time.monotonic()
            await client.get("namespaces", "default")
            assert client.server == api.server
            # loose (a loaded machine); without the connect timeout the dropped SYNs take the kernel's ~2 min of retries
            assert time.monotonic() - started < 30
    finally:
        for s in fillers:
            s.close()
        blackhole.close()


async def test_an_http_error_answer_is_not_a_reason_to_switch(cluster, tmp_path):
    api, kubeconfig = cluster

    async def forbidden(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                                  "reason": "Forbidden", "message": "nope"}, status=403)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forbidden)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    kc = with_servers(kubeconfig, tmp_path / "kc", [f"http://127.0.0.1:{port}", api.server])
    try:
        async with ApiClient.from_kubeconfig(str(kc)) as client:
            with pytest.raises(Forbidden):
                await client.get("namespaces", "default")
            assert client.server == f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_watches_fail_over_too(cluster, tmp_path):
    api, kubeconfig = cluster
    kc = with_servers(kubeconfig, tmp_path / "kc", [f"https://127.0.0.1:{free_port()}", api.server])
    async with ApiClient.from_kubeconfig(str(kc)) as client:
        stream = client.watch("namespaces", resource_version="0")
        kind, obj = await asyncio.wait_for(stream.__anext__(), 30)
        await stream.aclose()
        assert kind == "ADDED" and obj["kind"] == "Namespace"
        assert client.server == api.server


async def test_clusterctl_get_fails_over_and_kubectl_reads_the_extension(cluster, tmp_path):
    api, kubeconfig = cluster
    dead = f"https://127.0.0.1:{free_port()}"
    kc = with_servers(kubeconfig, tmp_path / "kc", [dead, api.server])
    # clusterctl's Table requests go through the client's session: they fail over like the rest
    got = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "clusterctl", "--kubeconfig", str(kc), "get", "namespaces"],
                                  capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert "default" in got.stdout
    # kubectl keeps using server: and ignores the extension
    kc_kubectl = with_servers(kubeconfig, tmp_path / "kc-kubectl", [dead, api.server], server=api.server)
    got = await asyncio.to_thread(subprocess.run, ["kubectl", "--kubeconfig", str(kc_kubectl), "get", "namespaces", "-o", "name"],
                                  capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert "namespace/default" in got.stdout.split()
