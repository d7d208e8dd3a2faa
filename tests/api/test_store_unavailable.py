"""A store that cannot answer (etcd without a leader) is a 503 + Retry-After the clients retry, a
write whose fate is unknown a 504 — never a 500 — and the official client sees the Status."""

from __future__ import annotations

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from clusterctl.api.server import error_middleware
from clusterctl.store.base import StoreError, StoreUnavailable


async def _client(exc: Exception) -> TestClient:
    async def handler(request: web.Request) -> web.Response:
        raise exc
    app = web.Application(middlewares=[error_middleware])
    app.router.add_route("*", "/api/v1/namespaces/default/pods", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_unavailable_store_is_503_with_retry_after():
    client = await _client(StoreUnavailable("etcd has no leader (3 s)", retry_after=2))
    try:
        resp = await client.get("/api/v1/namespaces/default/pods")
        body = orjson.loads(await resp.read())
        assert resp.status == 503 and resp.headers["Retry-After"] == "2"
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "ServiceUnavailable", 503)
        assert body["details"]["retryAfterSeconds"] == 2 and "no leader" in body["message"]
    finally:
        await client.close()


async def test_write_of_unknown_outcome_is_504_without_retry_after():
    client = await _client(StoreUnavailable("answer lost", retry_after=1, outcome_unknown=True))
    try:
        resp = await client.post("/api/v1/namespaces/default/pods", data=b"{}")
        body = orjson.loads(await resp.read())
        assert resp.status == 504 and "Retry-After" not in resp.headers
        assert body["reason"] == "Timeout" and "may or may not have been applied" in body["message"]
    finally:
        await client.close()


async def test_other_store_errors_stay_500():
    client = await _client(StoreError("disk full writing /var/lib/x/wal"))
    try:
        resp = await client.get("/api/v1/namespaces/default/pods")
        body = orjson.loads(await resp.read())
        assert resp.status == 500 and "disk full" in body["message"]
    finally:
        await client.close()
