"""The Hosts view probes a real lab (sshd hosts in network namespaces): facts, then a host going down."""

from __future__ import annotations

import asyncio
import time

import pytest

from clusterctl.tui._hosts import HostProbe, HostsView
from clusterctl.tui._source import ClusterSource
from clusterctl.tui.app import ClusterApp


def rows(view: HostsView) -> dict[str, list[str]]:
    return {str(view.get_row_at(i)[0]): [str(c) for c in view.get_row_at(i)] for i in range(view.row_count)}


@pytest.mark.lab
async def test_hosts_view_shows_facts_and_unreachable(lab_factory) -> None:
    lab = await asyncio.to_thread(lab_factory, 2)
    # a probe that times out shows UNREACHABLE: give a loaded machine's ssh handshake and facts
    # time (a stopped host refuses at once, so the check below does not wait on this)
    probe = HostProbe(str(lab.inventory_path), timeout=30)
    app = ClusterApp(ClusterSource.static([]), start_view="hosts", hosts=probe, hosts_interval=0.5, readonly=True)
    async with app.run_test(size=(160, 30)) as pilot:
        view = app.current_widget()
        assert isinstance(view, HostsView)
        end = time.monotonic() + 60
        while view.rounds < 1 and time.monotonic() < end:
            await pilot.pause(0.1)
        shown = rows(view)
        assert set(shown) == {"h1", "h2"}
        for name, cells in shown.items():
            assert cells[3] == "yes", cells
            assert cells[4] != "-" and cells[5] != "-" and cells[6] != "-", cells  # OS, kernel, CPUs from facts
            assert cells[2] == "nodes"
        await asyncio.to_thread(lab.stop, "h2")
        seen = view.rounds
        while (view.rounds < seen + 1 or not rows(view)["h2"][3].startswith("UNREACHABLE")) and time.monotonic() < end + 60:
            await pilot.pause(0.1)
        assert rows(view)["h2"][3].startswith("UNREACHABLE"), rows(view)["h2"]
        assert rows(view)["h1"][3] == "yes"
