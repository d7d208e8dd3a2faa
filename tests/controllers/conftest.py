"""A real control plane, the scheduler and the controllers in this event loop, and hollow nodes on demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from clusterctl.client.errors import Conflict
from clusterctl.client.rest import ApiClient
from clusterctl.controllers.manager import ControllerManager, ControllerManagerConfig, run_controllers
from clusterctl.scheduler.scheduler import Scheduler, SchedulerConfig
from clusterctl.sim.hollow import HollowCluster, HollowConfig
from tests.client.live import control_plane


class Env:
    def __init__(self, api: ApiClient, kubeconfig: Path) -> None:
        self.api = api
        self.kubeconfig = kubeconfig
        self.tasks: list[asyncio.Task[Any]] = []
        self.managers: list[ControllerManager] = []
        self.sims: list[HollowCluster] = []

    async def start(self, **cfg: Any) -> None:
        self.tasks.append(asyncio.create_task(Scheduler(self.api, SchedulerConfig(initial_backoff=0.05, max_backoff=0.2)).run()))
        await self.start_controllers(**cfg)

    async def start_controllers(self, **cfg: Any) -> None:
        config = ControllerManagerConfig(**{"leader_elect": False, **cfg})
        self.tasks.append(asyncio.create_task(run_controllers(self.api, config=config, on_term=self.managers.append)))

    async def add_nodes(self, prefix: str, count: int = 1, **cfg: Any) -> HollowCluster:
        sim = HollowCluster(self.api, HollowConfig(count=count, prefix=prefix, **{"renew_interval": 5, **cfg}))
        self.sims.append(sim)
        self.tasks.append(asyncio.create_task(sim.run()))
        await asyncio.wait_for(sim.started(), 60)
        return sim

    async def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
        end = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < end:
            self.check_alive()
            last = await probe()
            if last:
                return last
            await asyncio.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    async def seen_by_controllers(self, what: str, resource: str, key: str, check: Callable[[dict], Any], timeout: float = 30.0) -> dict:
        """Wait until the running controller manager's informer cache holds ``key`` of ``resource`` with
        ``check(obj)`` true: the point after which a reconcile can no longer act on an older copy."""
        async def probe() -> dict | None:
            if not self.managers:
                return None
            obj = self.managers[-1].informers.get(resource).get(key)
            return obj if obj is not None and check(obj) else None
        return await self.wait_for(what, probe, timeout=timeout)

    async def patch(self, resource: str, name: str, body: dict, **kwargs: Any) -> dict:
        """A PATCH that retries the API server's 409 (controllers write the same objects concurrently)."""
        for attempt in range(20):
            try:
                return await self.api.patch(resource, name, body, **kwargs)
            except Conflict:
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError(f"PATCH {resource}/{name} kept conflicting")

    async def pods(self, namespace: str = "default", selector: str | None = None) -> list[dict]:
        return (await self.api.list("pods", namespace=namespace, label_selector=selector))["items"]

    def check_alive(self) -> None:
        """A component that crashed fails the test that used it."""
        for t in self.tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise AssertionError(f"{t.get_name()} crashed") from t.exception()

    async def stop(self) -> None:
        try:
            self.check_alive()
        finally:
            await cancel_all(self.tasks)


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel until every task is done: on Python 3.11 a loop around ``asyncio.wait_for`` can swallow
    one cancellation (the inner wait finishing at the same moment), so one ``cancel()`` is not enough."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with control_plane(tmp_path, timings={"pod_deletion_margin": 0.5, "bookmark_interval": 0.5}) as (api, kubeconfig):
        e = Env(api, kubeconfig)
        try:
            yield e
        finally:
            await e.stop()
