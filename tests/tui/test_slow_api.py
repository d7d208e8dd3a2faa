"""A slow API server never freezes input: every API call runs in an informer task or a worker.

The "server" is a real socket that accepts connections and never answers, the slowest API there is.
"""

from __future__ import annotations

import asyncio
import time

from textual.widgets import Static

from clusterctl.client.kubeconfig import ClusterCredentials
from clusterctl.client.rest import ApiClient
from clusterctl.tui._table import ResourceTable
from clusterctl.tui.app import live_app


async def test_keys_answer_while_the_api_never_does() -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, then say nothing

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ApiClient(ClusterCredentials(server=f"http://127.0.0.1:{port}", token="t"), retries=0, request_timeout=120)
    app = live_app(client)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            deadline = time.monotonic() + 30  # the informers start with the app: wait for them to connect
            while not held:
                assert time.monotonic() < deadline, "the informers never reached the server"
                await pilot.pause(0.05)
            status = str(app.main.query_one("#status", Static).render())
            assert "connecting" in status and "● connected" not in status
            for alias, resource in (("no", "nodes"), ("deploy", "deployments"), ("svc", "services"), ("po", "pods")):
                started = time.monotonic()
                await pilot.press("colon", *alias, "enter")
                await pilot.pause()
                # a UI waiting on the API would wait out the 120 s request timeout; the bound is
                # loose (half of that) because a loaded CI machine takes seconds to render (2.2 s
                # seen at load 10; a pass at load 15-20 runs several times slower)
                assert time.monotonic() - started < 60.0
                widget = app.current_widget()
                assert isinstance(widget, ResourceTable) and widget.kind.resource == resource
            await pilot.press("question_mark")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is app.main
    finally:
        await client.close()
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
