"""The server in-process: components plugged into the control plane, extra subresources (how the
node runtime serves pods/log), and discovery of them."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
from aiohttp import web

from clusterctl.api.cli import init_data_dir
from clusterctl.api.server import ApiServer


async def test_component_registers_a_subresource(tmp_path):
    _, cfg, token = init_data_dir(tmp_path / "cp", port=0)
    started = asyncio.Event()

    async def serve_log(ctx, target, request, raw):
        return web.Response(text=f"log of {target.namespace}/{target.name}\n")

    async def component(ctx):
        ctx.extra_subresources[("pods", "log")] = serve_log
        started.set()
        await asyncio.Event().wait()     # runs until the server stops

    server = ApiServer(cfg, extra_components=[component])
    await server.start()
    try:
        await asyncio.wait_for(started.wait(), 30)
        ssl_ctx = ssl.create_default_context(cafile=str(cfg.path("pki") / "ca.crt"))
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as s:
            async with s.get(f"{server.url}/api/v1/namespaces/default/pods/web/log", ssl=ssl_ctx) as r:
                assert r.status == 200 and await r.text() == "log of default/web\n"
            async with s.get(f"{server.url}/api/v1", ssl=ssl_ctx) as r:
                names = [res["name"] for res in (await r.json())["resources"]]
                assert "pods/log" in names
            async with s.get(f"{server.url}/api/v1/namespaces/default/pods/web/attach", ssl=ssl_ctx) as r:
                assert r.status == 404
    finally:
        await server.stop()


async def test_failing_component_does_not_stop_the_server(tmp_path):
    _, cfg, token = init_data_dir(tmp_path / "cp", port=0)

    async def broken(ctx):
        raise RuntimeError("boom")

    server = ApiServer(cfg, extra_components=[broken])
    await server.start()
    try:
        await asyncio.sleep(0.1)
        ssl_ctx = ssl.create_default_context(cafile=str(cfg.path("pki") / "ca.crt"))
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.url}/readyz", ssl=ssl_ctx) as r:
                assert r.status == 200
    finally:
        await server.stop()


async def test_readyz_answers_503_until_the_server_has_finished_starting(tmp_path, monkeypatch):
    """The port opens before the bootstrap objects are written; a client that took the open port
    for readiness raced that start (with etcd losing a member then, the start failed and the
    server exited under the client). /readyz says "not yet" until start() has finished;
    /healthz and /livez (the process is alive) say ok."""
    from clusterctl.api import server as server_module
    _, cfg, _token = init_data_dir(tmp_path / "cp", port=0)
    release = asyncio.Event()
    real_bootstrap = server_module.bootstrap

    async def slow_bootstrap(ctx, **kwargs):
        await release.wait()
        return await real_bootstrap(ctx, **kwargs)

    monkeypatch.setattr(server_module, "bootstrap", slow_bootstrap)
    server = ApiServer(cfg)
    starting = asyncio.create_task(server.start())
    try:
        for _ in range(600):               # until the port is open (start is waiting in bootstrap)
            if server.port:
                break
            await asyncio.sleep(0.05)
        ssl_ctx = ssl.create_default_context(cafile=str(cfg.path("pki") / "ca.crt"))
        base = f"https://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/readyz", ssl=ssl_ctx) as r:
                assert r.status == 503 and "clusterctl-bootstrap" in await r.text()
            for path in ("/healthz", "/livez"):
                async with s.get(base + path, ssl=ssl_ctx) as r:
                    assert r.status == 200
            release.set()
            await asyncio.wait_for(starting, 60)
            async with s.get(f"{base}/readyz", ssl=ssl_ctx) as r:
                assert r.status == 200
    finally:
        release.set()
        if not starting.done():
            await asyncio.wait_for(starting, 60)
        await server.stop()


async def test_the_server_waits_at_start_for_an_unavailable_etcd(tmp_path):
    """A control plane started beside its etcd (HA bootstrap starts them together) waits for the
    store instead of exiting after one retry budget (no service manager restarts it on lab hosts)."""
    from clusterctl.store.etcd_process import LocalEtcd
    with LocalEtcd(tmp_path / "etcd") as etcd:
        _, cfg, _token = init_data_dir(tmp_path / "cp", port=0, store=etcd.store_config(retry_budget=0.5, timeout=0.5))
        etcd.pause()                       # connections hang: every attempt times out
        server = ApiServer(cfg)
        starting = asyncio.create_task(server.start())
        try:
            await asyncio.sleep(4)         # several retry budgets
            assert not starting.done(), starting.exception() if starting.done() else None
            etcd.resume()
            await asyncio.wait_for(starting, 60)
            ssl_ctx = ssl.create_default_context(cafile=str(cfg.path("pki") / "ca.crt"))
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{server.url}/readyz", ssl=ssl_ctx) as r:
                    assert r.status == 200
        finally:
            etcd.resume()
            if not starting.done():
                starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await server.stop()


async def test_api_servers_starting_together_on_one_etcd_all_start(tmp_path):
    """HA bootstrap starts an API server on every control-plane host at once, all on one etcd:
    one may create the ``kubernetes`` Service between another's read ("absent") and its create,
    which then fails 422 (the clusterIP is taken now). The late server must start anyway (it exited,
    and on hosts without a service manager that left it down). The race is made certain: the second
    server's first read of the Service answers "absent" although the first server made it."""
    from clusterctl.store import open_store
    from clusterctl.store.etcd_process import LocalEtcd
    with LocalEtcd(tmp_path / "etcd") as etcd:
        _, cfg_a, _ = init_data_dir(tmp_path / "a", port=0, store=etcd.store_config())
        _, cfg_b, token_b = init_data_dir(tmp_path / "b", port=0, store=etcd.store_config())
        first = ApiServer(cfg_a)
        await first.start()
        store_b = open_store(cfg_b.store_config)
        real_get, stale = store_b.get, ["/services/default/kubernetes"]

        async def get(key, *args, **kwargs):
            if stale and key.endswith(stale[0]):
                stale.clear()
                return None            # read before the first server's create landed
            return await real_get(key, *args, **kwargs)

        store_b.get = get
        second = ApiServer(cfg_b, store=store_b)
        try:
            await asyncio.wait_for(second.start(), 60)
            assert not stale, "the second server never read the Service"
            ssl_ctx = ssl.create_default_context(cafile=str(cfg_b.path("pki") / "ca.crt"))
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token_b}"}) as s:
                async with s.get(f"{second.url}/readyz", ssl=ssl_ctx) as r:
                    assert r.status == 200
                async with s.get(f"{second.url}/api/v1/namespaces/default/services/kubernetes", ssl=ssl_ctx) as r:
                    assert r.status == 200 and (await r.json())["spec"]["clusterIP"] == "10.96.0.1"
        finally:
            await second.stop()
            await first.stop()
