"""The TUI against a real control plane (API server + scheduler + controllers) and hollow nodes.

Pilot drives the keys; the cluster is checked through the API: what the screen shows comes from
real watches, and what the keys do lands in the real store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Log, Static

from clusterctl.api.cli import DEFAULT_COMPONENTS
from clusterctl.api.testing import FAST_TIMINGS, ControlPlane, start_control_plane
from clusterctl.client.rest import ApiClient
from clusterctl.sim.hollow import HollowCluster, HollowConfig
from clusterctl.tui._dialogs import ConfirmScreen, InputScreen
from clusterctl.tui._table import ResourceTable
from clusterctl.tui._text import LogScreen
from clusterctl.tui.app import live_app

SIZE = (120, 40)


def deployment(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "registry.local/web:1"}],
                                           "terminationGracePeriodSeconds": 0}}}}


class Live:
    def __init__(self, cp: ControlPlane, admin: ApiClient, sim: HollowCluster) -> None:
        self.cp, self.admin, self.sim = cp, admin, sim


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    cp = await asyncio.to_thread(start_control_plane, tmp_path / "cp", timings=FAST_TIMINGS, extra={"components": DEFAULT_COMPONENTS})
    admin = ApiClient.from_kubeconfig(str(cp.kubeconfig))
    sim = HollowCluster(ApiClient.from_kubeconfig(str(cp.kubeconfig)), HollowConfig(count=2, prefix="tui-", renew_interval=2))
    task = asyncio.create_task(sim.run())
    try:
        await asyncio.wait_for(sim.started(), 60)
        yield Live(cp, admin, sim)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.client.close()
        await admin.close()
        await asyncio.to_thread(cp.stop)


async def until(pilot: Any, what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Until ``probe()`` holds (60 s: a control plane, hollow nodes and the TUI share a possibly loaded machine)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


def table(app) -> ResourceTable:
    widget = app.current_widget()
    assert isinstance(widget, ResourceTable), widget
    return widget


def running_rows(app, prefix: str) -> list[str]:
    t = table(app)
    return [k for k in t.shown_keys() if k.startswith(prefix) and str(t.get_row(k)[3]) == "Running"]


async def test_pods_appear_scale_delete_cordon_logs(live: Live) -> None:
    client = ApiClient.from_kubeconfig(str(live.cp.kubeconfig), retries=0)
    app = live_app(client)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, "connected", lambda: app.source.connected)
            await live.admin.create(deployment("web", 2))
            await until(pilot, "2 web pods Running on screen", lambda: len(running_rows(app, "default/web-")) == 2)
            # scale from the TUI: :deploy, s, 3, enter
            await pilot.press("colon", *"deploy", "enter")
            await pilot.pause()
            await until(pilot, "deployment row", lambda: table(app).row_count == 1)
            await pilot.press("s")
            await until(pilot, "scale dialog", lambda: isinstance(app.screen, InputScreen))
            app.screen.query_one("Input").value = "3"
            await pilot.press("enter")
            await until(pilot, "spec.replicas 3", lambda: _replicas(live.admin, "web", 3))
            await pilot.press("enter")  # drill down to its pods
            await until(pilot, "3 web pods Running on screen", lambda: len(running_rows(app, "default/web-")) == 3)
            assert table(app).view_filter.selector == "app=web"
            # delete a pod (asks first)
            victim = table(app).selected_key()
            assert victim
            await pilot.press("ctrl+d")
            await until(pilot, "confirmation", lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, f"{victim} gone from the screen", lambda: victim not in table(app).shown_keys())
            await until(pilot, "replacement Running", lambda: len(running_rows(app, "default/web-")) == 3)
            # logs of a pod: hollow nodes run nothing, so the API server's answer is shown (no hang)
            await pilot.press("l")
            await until(pilot, "log screen", lambda: isinstance(app.screen, LogScreen))
            await until(pilot, "log text", lambda: app.screen.query_one(Log).lines)
            shown = "\n".join(app.screen.query_one(Log).lines)
            assert shown.strip()
            await pilot.press("escape")
            # cordon / uncordon a node
            await pilot.press("colon", *"no", "enter")
            await until(pilot, "nodes", lambda: table(app).row_count == 2)
            node = table(app).selected_key()
            await pilot.press("c")
            await until(pilot, "cordoned in the API", lambda: _unschedulable(live.admin, node, True))
            await until(pilot, "cordoned on screen", lambda: "SchedulingDisabled" in str(table(app).get_row(node)[1]))
            await pilot.press("u")
            await until(pilot, "uncordoned in the API", lambda: _unschedulable(live.admin, node, False))
            await until(pilot, "uncordoned on screen", lambda: str(table(app).get_row(node)[1]) == "Ready")
    finally:
        await client.close()


async def _replicas(api: ApiClient, name: str, want: int) -> bool:
    return (await api.get("deployments", name, namespace="default"))["spec"]["replicas"] == want


async def _unschedulable(api: ApiClient, node: str, want: bool) -> bool:
    return bool((await api.get("nodes", node)).get("spec", {}).get("unschedulable")) == want


async def test_disconnected_then_reconnects_and_relists(live: Live) -> None:
    client = ApiClient.from_kubeconfig(str(live.cp.kubeconfig), retries=0, request_timeout=5)
    app = live_app(client)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, "connected", lambda: app.source.connected)
            await live.admin.create(deployment("db", 1))
            await until(pilot, "db pod Running", lambda: len(running_rows(app, "default/db-")) == 1)
            await asyncio.to_thread(live.cp.stop)
            status = app.main.query_one("#status", Static)
            await until(pilot, "DISCONNECTED shown", lambda: "DISCONNECTED" in str(status.render()), timeout=30)
            assert status.has_class("disconnected")
            # keys still work while the API server is gone
            await pilot.press("colon", *"no", "enter")
            await pilot.pause()
            assert table(app).kind.resource == "nodes"
            await pilot.press("escape")
            await pilot.pause()
            await asyncio.to_thread(live.cp.start)
            # a change made while the TUI was away arrives through the re-list
            await live.admin.scale("deployments", "db", 2, namespace="default")
            await until(pilot, "connected again", lambda: "connected" in str(status.render()) and "DISCONNECTED" not in str(status.render()), timeout=60)
            await until(pilot, "scaled pods seen after reconnect", lambda: len(running_rows(app, "default/db-")) == 2, timeout=60)
            assert app.source.informers["pods"].relists >= 1
    finally:
        await client.close()
