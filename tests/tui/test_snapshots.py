"""Snapshot tests (pytest-textual-snapshot) of the main views on the fake cluster example.

``--snapshot-update`` rewrites ``__snapshots__``; review the SVGs before committing them.
"""

from __future__ import annotations

import time

import pytest

from clusterctl.tui.examples.fake_cluster import make_app

SIZE = (120, 32)


@pytest.mark.parametrize("view", ["pods", "nodes", "deployments", "services", "events", "overview", "namespaces", "jobs"])
def test_view(snap_compare, view: str) -> None:
    async def settle(pilot) -> None:
        await pilot.pause(0.2)
    assert snap_compare(make_app(view, feed=None), terminal_size=SIZE, run_before=settle)


def test_provisioning_feed(snap_compare) -> None:
    async def loaded(pilot) -> None:
        # the feed is read by a worker: wait for its recap (50 polls of 0.05 s, the old limit, were
        # outlasted by a loaded machine and the snapshot then showed a half-read feed)
        deadline = time.monotonic() + 30
        while pilot.app.feed_state.recap is None:
            assert time.monotonic() < deadline, "the example feed's recap was never read"
            await pilot.pause(0.05)
        await pilot.pause(0.2)
    assert snap_compare(make_app("feed"), terminal_size=SIZE, run_before=loaded)


def test_rollout(snap_compare) -> None:
    async def open_rollout(pilot) -> None:
        await pilot.pause(0.2)
        await pilot.press("r")
        await pilot.pause(0.2)
    assert snap_compare(make_app("deployments", feed=None), terminal_size=SIZE, run_before=open_rollout)


def test_help(snap_compare) -> None:
    async def open_help(pilot) -> None:
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
    assert snap_compare(make_app("pods", feed=None), terminal_size=SIZE, run_before=open_help)
