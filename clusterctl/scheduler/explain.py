"""Why a pod goes (or does not go) where it goes: the per-node filter and score table.

``explain(pod, nodes, pods)`` runs *every* filter on *every* node (no sampling, no stopping at the
first failure, unlike a real cycle — a person wants the whole picture) and scores the feasible
nodes with the same plugins the scheduler uses. ``render_explain_table`` prints it for
``clusterctl explain-schedule POD``; the last line is the scheduler's own verdict message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterctl.scheduler.cache import SchedulerCache
from clusterctl.scheduler.cycle import Profile, fit_error_message, score_nodes, select_host
from clusterctl.scheduler.framework import Code, Obj, PodInfo, Status, pod_key

if TYPE_CHECKING:
    from clusterctl.client.rest import ApiClient


@dataclass
class NodeRow:
    node: str
    filters: dict[str, str]  # plugin -> "ok" | "skip" | "fail"
    reasons: list[str]
    first_failure: Status | None
    scores: dict[str, int] = field(default_factory=dict)
    total: int | None = None

    @property
    def feasible(self) -> bool:
        return self.first_failure is None


@dataclass
class ExplainTable:
    pod: str
    filter_names: list[str]
    score_names: list[tuple[str, int]]
    rows: list[NodeRow]
    chosen: str | None
    message: str


def build_cache(nodes: list[Obj], pods: list[Obj], *, exclude: str | None = None) -> SchedulerCache:
    cache = SchedulerCache()
    for node in nodes:
        cache.set_node(node)
    for p in pods:
        info = PodInfo.of(p)
        phase = (p.get("status") or {}).get("phase")
        if info.node_name and info.key != exclude and phase not in ("Succeeded", "Failed"):
            cache.add_pod(info, info.node_name)
    return cache


def explain(pod: Obj, nodes: list[Obj], pods: list[Obj], *, profile: Profile | None = None, rng: random.Random | None = None) -> ExplainTable:
    profile = profile or Profile()
    info = PodInfo.of(pod)
    cache = build_cache(nodes, pods, exclude=pod_key(pod))
    rows: list[NodeRow] = []
    for node in cache.node_list():
        verdicts: dict[str, str] = {}
        reasons: list[str] = []
        first: Status | None = None
        for plugin in profile.filters:
            if plugin.pre_filter(info).code == Code.SKIP:
                verdicts[plugin.name] = "skip"
                continue
            status = plugin.filter(info, node)
            verdicts[plugin.name] = "ok" if status.ok else "fail"
            if not status.ok:
                reasons.extend(status.reasons)
                first = first or status
        rows.append(NodeRow(node.name, verdicts, reasons, first))
    feasible = [cache.node(r.node) for r in rows if r.feasible]
    chosen: str | None = None
    if feasible:
        totals, per_plugin = score_nodes(info, [n for n in feasible if n is not None], profile.scorers)
        for row in rows:
            if row.node in totals:
                row.total = totals[row.node]
                row.scores = {name: scores[row.node] for name, scores in per_plugin.items()}
        chosen = select_host(totals, rng or random.Random(0))
        best = totals[chosen]
        ties = sorted(n for n, t in totals.items() if t == best)
        message = f"{len(feasible)}/{len(rows)} nodes fit; best score {best} on {', '.join(ties)}"
    else:
        statuses = {r.node: r.first_failure for r in rows if r.first_failure is not None}
        message = fit_error_message(len(rows), statuses)
    return ExplainTable(pod=info.key, filter_names=[p.name for p in profile.filters], score_names=[(s.name, s.weight) for s in profile.scorers],
                        rows=rows, chosen=chosen, message=message)


def render_explain_table(table: ExplainTable) -> str:
    """Plain text, one row per node: each filter's verdict, why it failed, each score and the total."""
    headers = ["NODE", *table.filter_names, "REASONS", *(f"{name}x{weight}" for name, weight in table.score_names), "TOTAL"]
    lines: list[list[str]] = []
    ordered = sorted(table.rows, key=lambda r: (r.total is None, -(r.total or 0), r.node))
    for row in ordered:
        mark = "*" if row.node == table.chosen else ""
        cells = [row.node + mark, *(row.filters.get(f, "") for f in table.filter_names),
                 "; ".join(row.reasons) or "-",
                 *(str(row.scores[name]) if name in row.scores else "-" for name, _ in table.score_names),
                 str(row.total) if row.total is not None else "-"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(headers)]
    out = [f"Pod {table.pod}", "   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    out += ["   ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    out.append(table.message if table.chosen is None else f"{table.message}; would bind to {table.chosen}")
    return "\n".join(out) + "\n"


async def explain_pod(client: "ApiClient", name: str, *, namespace: str = "default") -> str:
    """Fetch the pod, nodes and bound pods through the API and render the table (for ``explain-schedule``)."""
    pod = await client.get("pods", name, namespace=namespace)
    nodes = (await client.list("nodes", limit=500))["items"]
    pods = (await client.list("pods", limit=500))["items"]
    text = render_explain_table(explain(pod, nodes, pods))
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        text += f"(the pod is already bound to {bound}; the table shows where it would go now)\n"
    return text
