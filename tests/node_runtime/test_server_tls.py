"""The agent endpoint's TLS on its own (``node_runtime.server``): the certificate hash it publishes
is the one peers see, and without a cluster CA it lets nobody in (not even a well-formed client
certificate), instead of falling back to the machine's trust store or to no check at all.
The whole path with a control plane is in ``tests/api/test_agent_mtls.py``."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from clusterctl.api import auth
from node_runtime import server as agent_server

pytestmark = pytest.mark.timeout(120)


async def serve(tls: ssl.SSLContext):
    app = web.Application()
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(text="in")

    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def client(pki: Path) -> ssl.SSLContext:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    tls.load_cert_chain(pki / auth.KUBELET_CLIENT_CERT, pki / auth.KUBELET_CLIENT_KEY)
    return tls


async def get(port: int, tls: ssl.SSLContext) -> int:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        async with s.get(f"https://127.0.0.1:{port}/", timeout=aiohttp.ClientTimeout(total=60)) as r:
            return r.status


async def test_published_hash_is_what_peers_see_and_the_cluster_ca_lets_the_api_server_in(tmp_path):
    pki = tmp_path / "cluster"
    auth.init_pki(pki, addresses=["127.0.0.1"])
    crt, key = agent_server.self_signed(tmp_path / "agent", "n1", "127.0.0.1")
    runner, port = await serve(agent_server.endpoint_tls(crt, key, ca_file=str(pki / "ca.crt"), ca_data=None))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client(pki))
        seen = hashlib.sha256(writer.get_extra_info("ssl_object").getpeercert(binary_form=True)).hexdigest()
        writer.close()
        assert agent_server.cert_sha256(crt) == seen
        assert await get(port, client(pki)) == 200
    finally:
        await runner.cleanup()
    # inline CA data (a kubeconfig's certificate-authority-data) works the same
    runner, port = await serve(agent_server.endpoint_tls(crt, key, ca_file=None, ca_data=(pki / "ca.crt").read_bytes()))
    try:
        assert await get(port, client(pki)) == 200
    finally:
        await runner.cleanup()


async def test_without_a_cluster_ca_nobody_gets_in(tmp_path):
    pki = tmp_path / "cluster"
    auth.init_pki(pki, addresses=["127.0.0.1"])
    crt, key = agent_server.self_signed(tmp_path / "agent", "n1", "127.0.0.1")
    runner, port = await serve(agent_server.endpoint_tls(crt, key, ca_file=None, ca_data=None))
    try:
        with pytest.raises((aiohttp.ClientConnectionError, ssl.SSLError)):
            await get(port, client(pki))
    finally:
        await runner.cleanup()
