"""A real control plane, a scheduler in this event loop, and hollow nodes added on demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clusterctl.client.rest import ApiClient
from clusterctl.scheduler.scheduler import Scheduler, SchedulerConfig
from clusterctl.sim.hollow import HollowCluster, HollowConfig
from tests.client.live import cancel_all, control_plane


class Env:
    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.tasks: list[asyncio.Task[Any]] = []
        self.scheduler = Scheduler(api, SchedulerConfig(initial_backoff=0.05, max_backoff=0.2))

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.scheduler.run()))

    async def add_nodes(self, prefix: str, count: int = 1, **cfg: Any) -> HollowCluster:
        sim = HollowCluster(self.api, HollowConfig(count=count, prefix=prefix, renew_interval=5, **cfg))
        self.tasks.append(asyncio.create_task(sim.run()))
        await asyncio.wait_for(sim.started(), 60)
        return sim

    async def wait_pod(self, name: str, predicate, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            pod = await self.api.get("pods", name, namespace="default")
            if predicate(pod):
                return pod
            assert time.monotonic() < end, f"pod {name} never matched; last: {pod.get('spec', {}).get('nodeName')} {pod.get('status')}"
            await asyncio.sleep(0.05)

    async def wait_event(self, involved: str, predicate, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            events = (await self.api.list("events", namespace="default", field_selector=f"involvedObject.name={involved}"))["items"]
            hit = next((e for e in events if predicate(e)), None)
            if hit is not None:
                return hit
            assert time.monotonic() < end, f"no matching event for {involved}; have {[(e['reason'], e['message']) for e in events]}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await cancel_all(self.tasks)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with control_plane(tmp_path) as (api, _):
        e = Env(api)
        try:
            yield e
        finally:
            await e.stop()
