"""Pilot tests of every view and key on the fake cluster (stable data, no server)."""

from __future__ import annotations

from textual.widgets import Input, Log, Static, TextArea

from clusterctl.tui._dialogs import ChoiceScreen, ConfirmScreen, HelpScreen, InputScreen
from clusterctl.tui._feed import FeedView
from clusterctl.tui._overview import Overview
from clusterctl.tui._rollout import RolloutView
from clusterctl.tui._table import ResourceTable
from clusterctl.tui._text import LogScreen, TextScreen
from clusterctl.tui.examples.fake_cluster import make_app

SIZE = (120, 40)


def text_of(widget: Static) -> str:
    return str(widget.render())


def table(app) -> ResourceTable:
    widget = app.current_widget()
    assert isinstance(widget, ResourceTable), widget
    return widget


async def command(pilot, text: str) -> None:
    await pilot.press("colon")
    await pilot.press(*text)
    await pilot.press("enter")
    await pilot.pause()


async def select(pilot, app, key: str) -> None:
    t = table(app)
    t.move_cursor(row=t.get_row_index(key), animate=False)
    await pilot.pause()


async def test_command_bar_opens_every_view_by_alias() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        expected = {"po": ("pods", 10), "no": ("nodes", 3), "deploy": ("deployments", 1), "rs": ("replicasets", 2),
                    "ds": ("daemonsets", 1), "sts": ("statefulsets", 1), "job": ("jobs", 1), "cj": ("cronjobs", 1),
                    "svc": ("services", 2), "ns": ("namespaces", 3), "ev": ("events", 4)}
        for alias, (resource, rows) in expected.items():
            await command(pilot, alias)
            t = table(app)
            assert (t.kind.resource, t.row_count) == (resource, rows), alias
            assert text_of(app.main.query_one("#title", Static)).startswith(t.kind.name)
        await command(pilot, "overview")
        assert isinstance(app.current_widget(), Overview)
        await command(pilot, "feed")
        assert isinstance(app.current_widget(), FeedView)
        await command(pilot, "nosuchthing")
        assert "unknown resource" in text_of(app.main.query_one("#flash", Static))
        # esc walks back through the views in order
        await pilot.press("escape")
        assert isinstance(app.current_widget(), Overview)
        await pilot.press("escape")
        assert table(app).kind.resource == "events"


async def test_pods_view_cells_and_colours() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = table(app)
        row = t.get_row("default/api-5f7d9-eeeee")
        assert [str(c) for c in row] == ["default", "api-5f7d9-eeeee", "0/2", "CrashLoopBackOff", "14", "45m", "node-b", "10.244.1.15"]
        assert row[3].style == "red"
        assert t.get_row("default/big-0")[3].style == "yellow"
        assert t.get_row("shop/old-cart-0")[3].style == "magenta"
        assert t.get_row("default/batch-import-xxxxx")[3].style == "dim"
        assert t.get_row("default/web-6d4f8-aaaaa")[3].style == ""


async def test_nodes_view_shows_requests_bars_pods_and_cordon() -> None:
    app = make_app("nodes")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = table(app)
        a = [str(c) for c in t.get_row("node-a")]
        # node-a: 5 active pods; cpu 250m*2 (api is on b) ... requests summed from the pods bound there
        assert a[0:4] == ["node-a", "Ready", "control-plane", "v1.32.0-clusterctl"]
        assert a[6] == "5"  # active pods on node-a (the Completed one is not counted)
        assert a[4].startswith("[") and a[4].endswith("%")
        c = [str(x) for x in t.get_row("node-c")]
        assert c[1] == "NotReady,SchedulingDisabled"
        assert t.get_row("node-c")[1].style == "red"


async def test_filter_text_and_label_selector() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"cart", "enter")
        await pilot.pause()
        assert sorted(table(app).shown_keys()) == ["shop/cart-0", "shop/old-cart-0"]
        await pilot.press("slash")
        bar = app.main.query_one("#bar", Input)
        bar.value = "-l app=web"
        await pilot.press("enter")
        await pilot.pause()
        assert sorted(table(app).shown_keys()) == ["default/web-6d4f8-aaaaa", "default/web-6d4f8-bbbbb",
                                                   "default/web-7b9c1-ccccc", "default/web-7b9c1-ddddd"]
        assert "-l app=web" in text_of(app.main.query_one("#title", Static))
        await pilot.press("slash")
        app.main.query_one("#bar", Input).value = "-l app in (("
        await pilot.press("enter")
        await pilot.pause()
        assert "bad label selector" in text_of(app.main.query_one("#flash", Static))
        # esc on an open bar closes it without changing the view
        await pilot.press("slash", "x", "escape")
        await pilot.pause()
        assert not app.main.query_one("#bar", Input).has_class("open")
        assert len(table(app).shown_keys()) == 4


async def test_namespace_switch_and_all_namespaces() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, InputScreen)
        await pilot.press(*"shop", "enter")
        await pilot.pause()
        assert sorted(table(app).shown_keys()) == ["shop/cart-0", "shop/old-cart-0"]
        await command(pilot, "po kube-system")
        assert table(app).shown_keys() == ["kube-system/coredns-1"]
        await pilot.press("0")
        await pilot.pause()
        assert table(app).row_count == 10


async def test_describe_yaml_help_and_back() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, app, "default/api-5f7d9-eeeee")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, TextScreen)
        body = app.screen.query_one(TextArea).text
        assert "Name:         api-5f7d9-eeeee" in body and "BackOff" in body and "restarts=7" in body
        await pilot.press("escape")
        await pilot.press("y")
        await pilot.pause()
        assert "kind: Pod" in app.screen.query_one(TextArea).text and "name: api-5f7d9-eeeee" in app.screen.query_one(TextArea).text
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main


async def test_pending_pod_shows_scheduler_explanation() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, app, "default/big-0")
        await pilot.press("x")
        await pilot.pause()
        text = app.screen.query_one(TextArea).text
        assert "Pod default/big-0" in text or "big-0" in text
        for node in ("node-a", "node-b", "node-c"):
            assert node in text
        assert "cpu" in text.lower()
        await pilot.press("escape")
        await pilot.press("d")
        await pilot.pause()
        assert "Scheduling (why is it pending):" in app.screen.query_one(TextArea).text


async def test_enter_drills_down_deployment_to_pods_to_containers() -> None:
    app = make_app("deployments")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert table(app).kind.resource == "pods"
        assert sorted(table(app).shown_keys())[0].startswith("default/web-")
        assert table(app).row_count == 4
        await pilot.press("escape")
        await pilot.pause()
        assert table(app).kind.resource == "deployments"
        await command(pilot, "no")
        await select(pilot, app, "node-b")
        await pilot.press("enter")
        await pilot.pause()
        assert sorted(table(app).shown_keys()) == ["default/api-5f7d9-eeeee", "default/web-6d4f8-bbbbb", "default/web-7b9c1-ddddd"]
        await select(pilot, app, "default/api-5f7d9-eeeee")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)  # two containers: pick one
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen) and app.screen.container == "sidecar"
        await pilot.pause(0.2)
        # static data has no API server: the log view says so instead of hanging
        assert "no API server" in "\n".join(app.screen.query_one(Log).lines)
        for key, flag in (("f", "follow=on"), ("t", "timestamps=on"), ("p", "previous=on")):
            await pilot.press(key)
            await pilot.pause()
            assert flag in text_of(app.screen.query_one("#log-title", Static))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main


async def test_rollout_view_shows_old_and_new_replicasets() -> None:
    app = make_app("deployments")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        view = app.current_widget()
        assert isinstance(view, RolloutView)
        text = text_of(view)
        assert text.index("new ReplicaSet web-7b9c1 (revision 2)") < text.index("old ReplicaSet web-6d4f8 (revision 1)")
        assert "web-7b9c1-ddddd" in text and "ContainerCreating" in text
        # live: a pod of the new set goes Running and the view follows
        pod = app.source.get("pods", "default/web-7b9c1-ddddd")
        moved = {**pod, "metadata": {**pod["metadata"], "resourceVersion": "2"},
                 "status": {**pod["status"], "phase": "Running",
                            "containerStatuses": [{**pod["status"]["containerStatuses"][0], "ready": True, "state": {"running": {}}}]}}
        app.source.apply("MODIFIED", moved)
        await pilot.pause(0.1)
        line = next(ln for ln in text_of(view).splitlines() if "web-7b9c1-ddddd" in ln)
        assert "Running" in line and "1/1" in line


async def test_writes_are_refused_without_a_server_and_in_readonly_mode() -> None:
    app = make_app("deployments", readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "[read-only]" in text_of(app.main.query_one("#status", Static))
        await pilot.press("s")
        await pilot.pause()
        assert "read-only" in text_of(app.main.query_one("#flash", Static))
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert "read-only" in text_of(app.main.query_one("#flash", Static))
        await command(pilot, "no")
        await pilot.press("c")
        await pilot.pause(0.1)
        assert "read-only" in text_of(app.main.query_one("#flash", Static))


async def test_live_changes_update_cells_add_and_remove_rows() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = table(app)
        pod = app.source.get("pods", "default/big-0")
        app.source.apply("MODIFIED", {**pod, "metadata": {**pod["metadata"], "resourceVersion": "9"},
                                      "status": {**pod["status"], "phase": "Failed", "reason": "Evicted"}})
        new = {**pod, "metadata": {**pod["metadata"], "name": "zz-new", "uid": "u-new"}}
        app.source.apply("ADDED", new)
        app.source.apply("DELETED", app.source.get("pods", "shop/cart-0"))
        await pilot.pause(0.1)
        assert str(t.get_row("default/big-0")[3]) == "Evicted" and t.get_row("default/big-0")[3].style == "red"
        assert "default/zz-new" in t.shown_keys() and "shop/cart-0" not in t.shown_keys()
        assert t.row_count == 10


async def test_overview_counts_and_warnings() -> None:
    app = make_app("overview")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = app.current_widget().plain()
        assert "2/3 Ready, 1 cordoned" in text
        assert "Running 7" in text and "Pending 2" in text and "Succeeded 1" in text
        assert "FailedScheduling" in text and "BackOff" in text and "ScalingReplicaSet" not in text
        assert "CPU" in text and "Memory" in text


async def test_quit_key_exits() -> None:
    app = make_app("pods")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
