"""A real control plane for tests: ``clusterctl control-plane --config FILE`` in a subprocess.

Each use gets its own data directory and a free loopback port, and yields an ``ApiClient`` built
from the admin kubeconfig the server writes — the same path every component takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from clusterctl.client.errors import ApiConnectionError, ApiError
from clusterctl.client.rest import ApiClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def control_plane(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[ApiClient, Path]]:
    data_dir = tmp_path / "cp"
    data_dir.mkdir(parents=True, exist_ok=True)
    # tests run their own scheduler/controllers: no built-in components unless a test asks
    config = {"data_dir": str(data_dir), "bind_address": "127.0.0.1", "port": free_port(), "components": [], **settings}
    config_path = tmp_path / "control-plane.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "control-plane.log"
    log = open(log_path, "wb")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "clusterctl", "control-plane", "--config", str(config_path),
                                                stdout=log, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    kubeconfig = data_dir / "kubeconfig"
    client: ApiClient | None = None
    try:
        deadline = time.monotonic() + 60  # a cold start (imports, TLS material) on a loaded 2-CPU machine
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"control plane exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if kubeconfig.exists():
                try:
                    client = client or ApiClient.from_kubeconfig(str(kubeconfig), retries=0)
                    await client.request("GET", "/readyz", raw=True)
                    break
                except (ApiConnectionError, ApiError, ValueError, OSError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"control plane not ready after 60 s:\n{log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.05)
        client.retries = 5
        yield client, kubeconfig
    finally:
        if client is not None:
            await asyncio.wait_for(client.close(), 10)
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def cancel_all(tasks: list[asyncio.Task[Any]], *, timeout: float = 15.0) -> None:
    """Cancel until every task is done, then fail if some still run after ``timeout``.

    On Python 3.11 a loop around ``asyncio.wait_for`` can swallow one cancellation (the inner wait
    finishing at the same moment), so one ``cancel()`` is not enough; a component that never
    stops is a bug, reported here instead of hanging the suite.
    """
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    if pending:
        raise AssertionError(f"components did not stop when cancelled: {[t.get_coro() for t in pending]}")
    await asyncio.gather(*tasks, return_exceptions=True)
