"""The provisioning view follows a ``--log-json`` feed as it is written (by the real ``RunOutput``)."""

from __future__ import annotations

import io
import time
from pathlib import Path

from textual.widgets import DataTable, Static

from clusterctl.provision.output import RunOutput
from clusterctl.tui._feed import FeedView
from clusterctl.tui._source import ClusterSource
from clusterctl.tui.app import ClusterApp


async def until(pilot, probe, shown, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"the feed view never got there; it shows {shown()!r}"
        await pilot.pause(0.05)


def cells(grid: DataTable) -> list[list[str]]:
    return [[str(c) for c in grid.get_row_at(i)] for i in range(grid.row_count)]


async def test_feed_grid_follows_a_live_run(tmp_path: Path) -> None:
    feed = tmp_path / "run.jsonl"  # does not exist yet: the view waits for it
    app = ClusterApp(ClusterSource.static([]), feed=feed, start_view="feed", feed_interval=0.02, readonly=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        view = app.current_widget()
        assert isinstance(view, FeedView)
        assert "waiting for the feed" in str(view.query_one("#feed-header", Static).render())
        with open(feed, "w") as log_json:
            out = RunOutput(io.StringIO(), log_json=log_json, tty=False)
            out.playbook_start("site.yml")
            out.play_start("base", ["h1", "h2"])
            out.task_start("install packages", 2)
            out.host_start("h1", "install packages")
            grid = view.query_one("#feed-grid", DataTable)
            # the view reads the file every feed_interval: wait for what it shows to settle there
            await until(pilot, lambda: cells(grid) == [["install packages", "...", ""]], lambda: cells(grid))
            out.host_result("h1", "install packages", "ok", {"changed": True}, duration=0.1, no_log=False)
            out.host_result("h2", "install packages", "failed", {"msg": "no such package: nope"}, duration=0.1, no_log=False)
            out.task_start("secret", 1)
            out.host_result("h1", "secret", "ok", {"changed": False, "msg": "hunter2"}, duration=0.1, no_log=True)
            out.host_stats("h1").ok += 2
            out.host_stats("h1").changed += 1
            out.host_stats("h2").failed += 1
            out.recap(["h1", "h2"])
        await until(pilot, lambda: "finished" in str(view.query_one("#feed-header", Static).render()), lambda: cells(grid))
        assert cells(grid) == [["install packages", "changed", "FAILED"], ["secret", "ok", ""]]
        summary = str(view.query_one("#feed-summary", Static).render())
        assert "changed: h1=1, h2=0" in summary and "failed:  h1=0, h2=1" in summary
        assert "FAILED h2: install packages: no such package: nope" in summary
        assert "PLAY RECAP" in summary and "h1" in summary and "ok=2 changed=1" in summary
        assert "hunter2" not in summary
        assert "finished" in str(view.query_one("#feed-header", Static).render())
