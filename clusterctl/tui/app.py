"""``ClusterApp``: the k9s-style shell around the views.

Key table (``MainScreen.BINDINGS``):

=========  =============================================  =========  ==============================
``:``      command bar (``:po``, ``:deploy kube-system``)  ``/``      filter (text or ``-l sel``)
``n``      namespace (empty: all)                          ``0``      all namespaces
``enter``  drill down (workload → pods → containers)       ``esc``    back
``d``      describe                                        ``y``      YAML
``l``      logs (follow / timestamps / previous)           ``s``      scale
``ctrl+d`` delete (asks first)                             ``c``/``u`` cordon / uncordon
``r``      rollout of a deployment                         ``x``      scheduler's explanation
``?``      help                                            ``q``      quit
=========  =============================================  =========  ==============================

Every view is fed by ``ClusterSource``'s informers; changes are coalesced for ``flush_delay``
seconds and applied to the visible view only. All API calls run in workers, so a slow or absent
API server never blocks a key. The status line says ``connected`` or ``DISCONNECTED`` (the
informers retry and re-list by themselves).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static

from clusterctl.api.errors import ApiError
from clusterctl.client.rest import ApiClient, Obj
from clusterctl.tui._actions import ClusterActions, TuiActionError, describe, explain_pending, to_yaml
from clusterctl.tui._dialogs import ChoiceScreen, ConfirmScreen, HelpScreen, InputScreen
from clusterctl.tui._feed import FeedState, FeedView, follow_feed
from clusterctl.tui._hosts import HostProbe, HostsView
from clusterctl.tui._kinds import KINDS, resolve_alias
from clusterctl.tui._overview import Overview
from clusterctl.tui._rollout import RolloutView
from clusterctl.tui._source import ClusterSource
from clusterctl.tui._table import ResourceTable, ViewFilter
from clusterctl.tui._text import LogScreen, TextScreen

log = logging.getLogger(__name__)
AGE_SLICES = 10


@dataclass
class ViewState:
    """What the body shows: a view name (a resource plural, ``overview``, ``feed``, ``rollout``) and its scope."""

    view: str
    filter: ViewFilter = field(default_factory=ViewFilter)
    target: str | None = None  # rollout: the deployment key


class MainScreen(Screen):
    """Status line, the current view, the command/filter bar, flash messages and the footer."""

    BINDINGS = [
        Binding("colon", "command", ":cmd"),
        Binding("slash", "filter", "/filter"),
        Binding("n", "namespace", "ns"),
        Binding("0", "all_namespaces", "all ns", show=False),
        Binding("d", "describe", "describe"),
        Binding("y", "yaml", "yaml"),
        Binding("l", "logs", "logs"),
        Binding("s", "scale", "scale"),
        Binding("ctrl+d", "delete", "delete"),
        Binding("c", "cordon(True)", "cordon", show=False),
        Binding("u", "cordon(False)", "uncordon", show=False),
        Binding("r", "rollout", "rollout", show=False),
        Binding("x", "explain", "explain", show=False),
        Binding("question_mark", "help", "help"),
        Binding("escape", "back", "back"),
        Binding("q", "app.quit", "quit"),
    ]
    DEFAULT_CSS = """
    MainScreen #status { height: 1; background: $primary-background; padding: 0 1; }
    MainScreen #status.disconnected { background: $error; color: $text; }
    MainScreen #title { height: 1; padding: 0 1; text-style: bold; }
    MainScreen #body { height: 1fr; }
    MainScreen #flash { height: auto; max-height: 3; padding: 0 1; color: $warning; }
    MainScreen #bar { display: none; }
    MainScreen #bar.open { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        yield Static("", id="title")
        yield Vertical(id="body")
        yield Static("", id="flash")
        yield Input(id="bar")
        yield Footer()

    def on_mount(self) -> None:
        self.tui.start_views()

    def on_screen_resume(self) -> None:
        # rows changed under a dialog or the log view were refreshed line by line while hidden:
        # repaint the whole view on coming back
        widget = self.tui.current_widget()
        if widget is not None:
            widget.refresh()

    @property
    def tui(self) -> ClusterApp:
        return self.app  # type: ignore[return-value]

    # ----------------------------------------------------------------- bar

    def _open_bar(self, mode: str, value: str = "") -> None:
        bar = self.query_one("#bar", Input)
        bar.placeholder = "resource (po, deploy, svc, no, ns, ev, overview, feed …) [namespace]" if mode == "command" \
            else "filter text, or -l key=value"
        bar.value = value
        bar.mode = mode  # type: ignore[attr-defined]
        bar.add_class("open")
        bar.focus()

    def _close_bar(self) -> None:
        bar = self.query_one("#bar", Input)
        bar.remove_class("open")
        view = self.tui.current_widget()
        if view is not None and view.can_focus:
            view.focus()
            self.call_after_refresh(view.focus)  # a view mounted just now takes focus once it is there

    def action_command(self) -> None:
        self._open_bar("command")

    def action_filter(self) -> None:
        self._open_bar("filter", self.tui.state.filter.text or (f"-l {self.tui.state.filter.selector}" if self.tui.state.filter.selector else ""))

    @on(Input.Submitted, "#bar")
    def _bar_submitted(self, event: Input.Submitted) -> None:
        mode = getattr(event.input, "mode", "command")
        if mode == "command":
            self.tui.run_command(event.value)
        else:
            self.tui.set_filter(event.value)
        self._close_bar()

    def action_back(self) -> None:
        bar = self.query_one("#bar", Input)
        if bar.has_class("open"):
            self._close_bar()
            return
        self.tui.back()

    # ----------------------------------------------------------------- delegated

    def action_namespace(self) -> None:
        self.tui.ask_namespace()

    def action_all_namespaces(self) -> None:
        self.tui.set_namespace(None)

    def action_describe(self) -> None:
        self.tui.open_describe()

    def action_yaml(self) -> None:
        self.tui.open_yaml()

    def action_logs(self) -> None:
        self.tui.open_logs()

    def action_scale(self) -> None:
        self.tui.ask_scale()

    def action_delete(self) -> None:
        self.tui.ask_delete()

    def action_cordon(self, on: bool) -> None:
        self.tui.cordon(on)

    def action_rollout(self) -> None:
        self.tui.open_rollout()

    def action_explain(self) -> None:
        self.tui.open_explain()

    def action_help(self) -> None:
        self.tui.push_screen(HelpScreen())

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, ResourceTable):
            self.tui.drill_down()


class ClusterApp(App):
    """The whole cluster live in the terminal. ``source`` feeds it; ``actions`` write through the API."""

    TITLE = "clusterctl tui"
    CSS = """
    .title { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    """

    def __init__(self, source: ClusterSource, *, actions: ClusterActions | None = None, readonly: bool = False,
                 feed: Path | None = None, start_view: str = "pods", context: str = "",
                 now: Callable[[], datetime] | None = None, flush_delay: float = 0.02, feed_interval: float = 0.1,
                 hosts: HostProbe | None = None, hosts_interval: float = 30.0, age_interval: float = 10.0) -> None:
        super().__init__()
        self.source = source
        self.actions = actions or ClusterActions(None, readonly=readonly)
        self.actions.readonly = self.actions.readonly or readonly
        self.readonly = self.actions.readonly
        self.feed_path = feed
        self.feed_state = FeedState()
        self.feed_interval = feed_interval
        self.hosts = hosts
        self.hosts_interval = hosts_interval
        self.age_interval = age_interval
        self._age_slice = 0
        self.context = context
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.flush_delay = flush_delay
        self.namespace: str | None = None
        self.state = ViewState(start_view)
        self.history: list[ViewState] = []
        self._dirty: dict[str, set[str]] = {}
        self._stamps: list[tuple[str, float]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        #: latency samples (seconds) by label: "event" (watch event → rendered), "key" (set by benches)
        self.latencies: dict[str, list[float]] = {}
        self.record_latency = False
        self.main = MainScreen()
        self._current: Widget | None = None
        self._title_text = ""

    # ----------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        self.push_screen(self.main)

    def start_views(self) -> None:
        """Called once the main screen is composed: subscribe, start the informers, show the first view."""
        self.source.subscribe(self._on_change, self._on_state)
        self.source.start()
        self.show(self.state)
        self._update_status()
        if self.age_interval > 0:
            self.set_interval(self.age_interval / AGE_SLICES, self._refresh_ages)
        if self.feed_path is not None:
            self.run_worker(self._follow_feed(), group="feed", exclusive=True)

    async def on_unmount(self) -> None:
        await self.source.stop()

    # ----------------------------------------------------------------- changes

    def _on_change(self, resource: str, key: str, at: float) -> None:
        self._dirty.setdefault(resource, set()).add(key)
        if self.record_latency:
            self._stamps.append(("event", at))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(self.flush_delay, self._flush)

    def _refresh_ages(self) -> None:
        """AGE and LAST SEEN cells move with the clock, not with events: recompute the view's rows
        a slice at a time (every row once per ``age_interval``; no burst of 1,000 rows at once)."""
        widget = self.current_widget()
        if isinstance(widget, ResourceTable):
            keys = widget.shown_keys()
            size = max(1, -(-len(keys) // AGE_SLICES))
            start = (self._age_slice % AGE_SLICES) * size
            self._age_slice += 1
            widget.apply_changes(keys[start:start + size])
        elif isinstance(widget, (Overview, RolloutView)):
            widget.recompute()

    def _on_state(self, connected: bool, detail: str) -> None:
        self._update_status()
        if connected:
            self._flash("")
            # a re-list delivered the diff already; the overview/rollout recompute on the next flush
            if self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_later(self.flush_delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        try:
            self._apply_dirty()
        except Exception as exc:  # a loop callback's error would vanish into asyncio's log: show it
            log.exception("tui: applying changes failed")
            self._flash(f"internal error applying changes: {type(exc).__name__}: {exc}")

    def _apply_dirty(self) -> None:
        dirty, self._dirty = self._dirty, {}
        stamps, self._stamps = self._stamps, []
        widget = self.current_widget()
        if isinstance(widget, ResourceTable):
            kind = widget.kind
            keys = set(dirty.get(kind.resource, ()))
            for resource, mapper in kind.depends.items():
                for k in dirty.get(resource, ()):
                    obj = self.source.get(resource, k)
                    if obj is not None:
                        keys.update(mapper(obj))
                    elif resource == "pods" and kind.resource == "nodes":
                        keys.update(widget.shown_keys())  # a deleted pod: which node is unknown now
            if keys or stamps:
                widget.apply_changes(keys, [s for s in stamps] if keys else [])
        elif isinstance(widget, (Overview, RolloutView)):
            if dirty:
                widget.recompute()
        self._update_title()

    # ----------------------------------------------------------------- views

    def current_widget(self) -> Widget | None:
        return self._current

    def _make_widget(self, state: ViewState) -> Widget:
        if state.view == "overview":
            return Overview(self.source, now=self.now, classes="view")
        if state.view == "feed":
            return FeedView(self.feed_state, classes="view")
        if state.view == "hosts":
            return HostsView(self.hosts, interval=self.hosts_interval, classes="view")
        if state.view == "rollout":
            return RolloutView(self.source, state.target or "", now=self.now, classes="view")
        table = ResourceTable(self.source, KINDS[state.view], now=self.now, view_filter=state.filter, classes="view")
        table.on_rendered = self._rendered
        return table

    def _rendered(self, label: str, seconds: float) -> None:
        if self.record_latency:
            self.latencies.setdefault(label, []).append(seconds)

    def show(self, state: ViewState) -> None:
        self.state = state
        body = self.main.query_one("#body")
        body.remove_children()
        widget = self._make_widget(state)
        self._current = widget
        body.mount(widget)
        widget.focus()
        self.call_after_refresh(self._update_title)

    def go(self, state: ViewState) -> None:
        self.history.append(self.state)
        self.show(state)

    def back(self) -> None:
        if self.history:
            self.show(self.history.pop())

    def run_command(self, text: str) -> None:
        words = text.strip().lstrip(":").split()
        if not words:
            return
        if words[0] in ("q", "quit", "q!"):
            self.exit()
            return
        view = resolve_alias(words[0])
        if view is None:
            self._flash(f"unknown resource {words[0]!r} (try :po, :deploy, :svc, :no, :ns, :ev, :overview, :feed)")
            return
        if view == "rollout":
            self.open_rollout()
            return
        if len(words) > 1:
            self.namespace = None if words[1] in ("all", "-A") else words[1]
        self.go(ViewState(view, ViewFilter(namespace=self.namespace)))

    def set_filter(self, text: str) -> None:
        if self.state.view not in KINDS:
            return
        new = ViewFilter.parse(text, namespace=self.state.filter.namespace, node=self.state.filter.node)
        if not new.selector:
            new.selector = self.state.filter.selector if not text.strip() else ""
        try:
            new.label_selector()
        except ApiError as exc:
            self._flash(f"bad label selector {new.selector!r}: {exc}")
            return
        self.show(ViewState(self.state.view, new))

    def set_namespace(self, namespace: str | None) -> None:
        self.namespace = namespace or None
        f = self.state.filter
        if self.state.view in KINDS:
            self.show(ViewState(self.state.view, ViewFilter(namespace=self.namespace, text=f.text, selector=f.selector, node=f.node)))
        self._update_title()

    def ask_namespace(self) -> None:
        names = sorted(n["metadata"]["name"] for n in self.source.list("namespaces"))
        self.push_screen(InputScreen(f"namespace (empty for all; known: {', '.join(names) or '-'})", self.namespace or ""),
                         lambda value: None if value is None else self.set_namespace(value.strip()))

    # ----------------------------------------------------------------- selection

    def selected(self) -> tuple[str, Obj] | None:
        widget = self.current_widget()
        if isinstance(widget, ResourceTable):
            obj = widget.selected_object()
            if obj is not None:
                return widget.kind.resource, obj
        if isinstance(widget, RolloutView):
            obj = self.source.get("deployments", widget.key)
            if obj is not None:
                return "deployments", obj
        self._flash("nothing selected")
        return None

    def drill_down(self) -> None:
        picked = self.selected()
        if picked is None:
            return
        resource, obj = picked
        meta, spec = obj["metadata"], obj.get("spec") or {}
        ns = meta.get("namespace")
        if resource in ("deployments", "replicasets", "daemonsets", "statefulsets", "jobs"):
            labels = (spec.get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            self.go(ViewState("pods", ViewFilter(namespace=ns, selector=selector)))
        elif resource == "services":
            selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
            self.go(ViewState("pods", ViewFilter(namespace=ns, selector=selector or "clusterctl.io/none=none")))
        elif resource == "nodes":
            self.go(ViewState("pods", ViewFilter(node=meta["name"])))
        elif resource == "namespaces":
            self.namespace = meta["name"]
            self.go(ViewState("pods", ViewFilter(namespace=meta["name"])))
        elif resource == "cronjobs":
            self.go(ViewState("jobs", ViewFilter(namespace=ns, text=meta["name"])))
        elif resource == "pods":
            self._pick_container(obj, lambda c: self.push_screen(LogScreen(self.actions, obj, c)))
        else:
            self.open_describe()

    def _pick_container(self, pod: Obj, then: Callable[[str], Any]) -> None:
        containers = (pod.get("spec") or {}).get("containers") or []
        states = {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}
        if len(containers) <= 1:
            then(containers[0]["name"] if containers else "")
            return
        choices = []
        for c in containers:
            st = states.get(c["name"], {})
            state = next(iter(st.get("state") or {}), "waiting")
            choices.append((c["name"], f"{c['name']:<20} {state:<10} ready={st.get('ready', False)} restarts={st.get('restartCount', 0)}  {c.get('image')}"))
        self.push_screen(ChoiceScreen(f"containers of {pod['metadata']['name']}", choices), lambda v: v and then(v))

    def open_describe(self) -> None:
        picked = self.selected()
        if picked:
            resource, obj = picked
            self.push_screen(TextScreen(f"Describe {resource}/{obj['metadata']['name']}", describe(self.source, resource, obj)))

    def open_yaml(self) -> None:
        picked = self.selected()
        if picked:
            resource, obj = picked
            self.push_screen(TextScreen(f"YAML {resource}/{obj['metadata']['name']}", to_yaml(obj)))

    def open_explain(self) -> None:
        picked = self.selected()
        if picked and picked[0] == "pods":
            self.push_screen(TextScreen(f"Scheduling {picked[1]['metadata']['name']}", explain_pending(self.source, picked[1])))
        elif picked:
            self._flash("x explains where a pod would be scheduled: select a pod")

    def open_logs(self) -> None:
        picked = self.selected()
        if picked is None:
            return
        if picked[0] != "pods":
            self._flash("logs: select a pod")
            return
        pod = picked[1]
        self._pick_container(pod, lambda c: self.push_screen(LogScreen(self.actions, pod, c)))

    def open_rollout(self) -> None:
        picked = self.selected()
        if picked and picked[0] == "deployments":
            meta = picked[1]["metadata"]
            self.go(ViewState("rollout", target=f"{meta['namespace']}/{meta['name']}"))
        elif picked:
            self._flash("rollout: select a deployment")

    # ----------------------------------------------------------------- writes

    def _act(self, what: str, coro: Any) -> None:
        async def run() -> None:
            try:
                await coro
                self._flash(f"{what}: done")
            except TuiActionError as exc:
                self._flash(str(exc))
        self.run_worker(run(), group="actions")

    def ask_scale(self) -> None:
        picked = self.selected()
        if picked is None:
            return
        resource, obj = picked
        if not KINDS.get(resource) or not KINDS[resource].scalable:
            self._flash(f"{resource} cannot be scaled")
            return
        if self.readonly:
            self._flash("scale: read-only mode")
            return
        current = (obj.get("spec") or {}).get("replicas", 1)

        def done(value: str | None) -> None:
            if value is None:
                return
            try:
                replicas = int(value)
                if replicas < 0:
                    raise ValueError
            except ValueError:
                self._flash(f"scale: {value!r} is not a replica count")
                return
            self._act(f"scale {resource}/{obj['metadata']['name']} to {replicas}", self.actions.scale(resource, obj, replicas))
        self.push_screen(InputScreen(f"Scale {resource}/{obj['metadata']['name']} — replicas:", str(current)), done)

    def ask_delete(self) -> None:
        picked = self.selected()
        if picked is None:
            return
        resource, obj = picked
        if self.readonly:
            self._flash("delete: read-only mode")
            return
        name = obj["metadata"]["name"]

        def done(yes: bool | None) -> None:
            if yes:
                self._act(f"delete {resource}/{name}", self.actions.delete(resource, obj))
        self.push_screen(ConfirmScreen(f"Delete {resource}/{name}?"), done)

    def cordon(self, on: bool) -> None:
        picked = self.selected()
        if picked is None:
            return
        if picked[0] != "nodes":
            self._flash(f"{'cordon' if on else 'uncordon'}: select a node")
            return
        self._act(f"{'cordon' if on else 'uncordon'} {picked[1]['metadata']['name']}", self.actions.cordon(picked[1], on))

    # ----------------------------------------------------------------- feed

    async def _follow_feed(self) -> None:
        assert self.feed_path is not None
        async for event in follow_feed(self.feed_path, interval=self.feed_interval):
            self.feed_state.apply(event)
            widget = self.current_widget()
            if isinstance(widget, FeedView):
                widget.update_from(self.feed_state)

    # ----------------------------------------------------------------- chrome

    def _flash(self, text: str) -> None:
        try:
            self.main.query_one("#flash", Static).update(text)
        except Exception:
            pass

    def _update_status(self) -> None:
        try:
            status = self.main.query_one("#status", Static)
        except Exception:
            return
        if self.source.connected:
            conn = "● connected"
        elif self.source.detail == "connecting":
            conn = "… connecting"
        else:
            detail = (self.source.detail.splitlines() or [""])[0]
            detail = detail if len(detail) <= 60 else detail[:57] + "..."
            conn = f"✖ DISCONNECTED — reconnecting ({detail})"
        if self.source.client is None:
            conn = "● static data"
        ro = "  [read-only]" if self.readonly else ""
        status.update(Text(f"clusterctl {self.context}  {conn}{ro}", no_wrap=True, overflow="ellipsis"))
        status.set_class(not self.source.connected, "disconnected")

    def _update_title(self) -> None:
        try:
            title = self.main.query_one("#title", Static)
        except Exception:
            return
        widget = self.current_widget()
        if isinstance(widget, ResourceTable):
            scope = widget.view_filter.describe() if widget.kind.namespaced else widget.view_filter.describe().replace("ns=all", "").strip()
            text = f"{widget.kind.name}({scope})[{widget.row_count}]" if scope else f"{widget.kind.name}[{widget.row_count}]"
        elif self.state.view == "rollout":
            text = f"Rollout({self.state.target})"
        elif self.state.view == "hosts":
            text = f"Hosts({len(self.hosts.hosts) if self.hosts else 0})"
        elif self.state.view == "feed":
            text = f"Provisioning feed({self.feed_path.name if self.feed_path else 'no --feed file'})"
        else:
            text = "Overview"
        if text != self._title_text:  # an unchanged title must not cost a layout pass per flush
            self._title_text = text
            title.update(Text(text))


def live_app(client: ApiClient, **kwargs: Any) -> ClusterApp:
    """An app following a real API server through ``client``."""
    readonly = bool(kwargs.pop("readonly", False))
    return ClusterApp(ClusterSource(client), actions=ClusterActions(client, readonly=readonly), readonly=readonly,
                      context=kwargs.pop("context", client.server), **kwargs)
