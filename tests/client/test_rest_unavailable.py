"""``ApiClient`` and ``503 Service Unavailable``: with ``Retry-After`` the server says it did not
serve the request and when to come back (the API server's answer while etcd elects a leader), so
every verb is retried after that delay; without it, or after ``retries``, the error surfaces.
A real HTTP server on loopback plays the API server (a store that is unavailable on cue)."""

from __future__ import annotations

import pytest
from aiohttp import web

from clusterctl.client.errors import ApiError
from clusterctl.client.kubeconfig import ClusterCredentials
from clusterctl.client.rest import ApiClient

UNAVAILABLE = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503, "reason": "ServiceUnavailable",
               "message": "etcd: leader changed"}


@pytest.fixture
async def flaky_server():
    """(url, state): answers 503 to the first ``state['unavailable']`` requests, then serves them."""
    state = {"unavailable": 0, "retry_after": "0", "seen": []}

    async def handle(request: web.Request) -> web.Response:
        state["seen"].append(request.method)
        if state["unavailable"] > 0:
            state["unavailable"] -= 1
            headers = {"Retry-After": state["retry_after"]} if state["retry_after"] is not None else {}
            return web.json_response(UNAVAILABLE, status=503, headers=headers)
        return web.json_response({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
                                 status=201 if request.method == "POST" else 200)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", state
    await runner.cleanup()


async def test_503_with_retry_after_is_retried_for_any_verb_after_the_delay(flaky_server):
    url, state = flaky_server
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
    state.update(unavailable=2, retry_after="1")
    async with ApiClient(ClusterCredentials(server=url), sleep=sleep) as client:
        created = await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    assert created["metadata"]["name"] == "ns"
    assert state["seen"] == ["POST", "POST", "POST"] and slept == [1.0, 1.0]


async def test_503_without_retry_after_or_past_the_retries_surfaces(flaky_server):
    url, state = flaky_server
    state.update(unavailable=1, retry_after=None)
    async with ApiClient(ClusterCredentials(server=url)) as client:
        with pytest.raises(ApiError) as err:
            await client.get("namespaces", "ns")
    assert err.value.code == 503 and state["seen"] == ["GET"]

    state.update(unavailable=10, retry_after="0", seen=[])
    async with ApiClient(ClusterCredentials(server=url), retries=2) as client:
        with pytest.raises(ApiError, match="leader changed"):
            await client.get("namespaces", "ns")
    assert state["seen"] == ["GET"] * 3
