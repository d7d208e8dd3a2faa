"""One scheduling decision, pure: filter nodes, score the feasible ones, pick the best.

Like kube-scheduler, filtering walks the node list from a rotating start index and stops once it
has found ``num_feasible_nodes_to_find`` feasible nodes (``percentageOfNodesToScore``; adaptive
by default: 50% minus 1% per 125 nodes, at least 5%, never fewer than 100 nodes) — so cost per
pod stays flat as the cluster grows, while a pod that fits nowhere still gets every node's reason.
Scoring in the hot loop (``score_totals``) works on lists aligned with the feasible nodes; the
per-plugin dicts of ``score_nodes`` are for the explain table. ``FitError`` renders Kubernetes'
message: reasons counted over nodes, sorted as strings:
``0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.``
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from clusterctl.scheduler.framework import SUCCESS, Code, FilterPlugin, NodeInfo, PodInfo, ScorePlugin, Status
from clusterctl.scheduler.plugins import default_filters, default_scorers

MIN_FEASIBLE_NODES_TO_FIND = 100
_NAME = attrgetter("name")
MIN_FEASIBLE_NODES_PERCENTAGE = 5
NO_NODES_MESSAGE = "no nodes available to schedule pods"


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int = 0) -> int:
    """kube-scheduler's ``numFeasibleNodesToFind`` (``percentage`` 0 = adaptive)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_all_nodes
    if percentage <= 0:
        percentage = max(MIN_FEASIBLE_NODES_PERCENTAGE, 50 - num_all_nodes // 125)
    return max(MIN_FEASIBLE_NODES_TO_FIND, num_all_nodes * percentage // 100)


def fit_error_message(num_all_nodes: int, statuses: dict[str, Status], post_filter_message: str = "") -> str:
    if num_all_nodes == 0:
        return NO_NODES_MESSAGE
    histogram: Counter[str] = Counter()
    for status in statuses.values():
        for reason in status.reasons:
            histogram[reason] += 1
    message = f"0/{num_all_nodes} nodes are available:"
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    if parts:
        message += " " + ", ".join(parts) + "."
    if post_filter_message:
        message += " " + post_filter_message
    return message


class FitError(Exception):
    """No node passed the filters; ``statuses`` has every node's reason."""

    def __init__(self, pod: PodInfo, num_all_nodes: int, statuses: dict[str, Status]) -> None:
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.statuses = statuses
        self.post_filter_message = ""
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return fit_error_message(self.num_all_nodes, self.statuses, self.post_filter_message)

    def __str__(self) -> str:
        return self.message


@dataclass
class Profile:
    """The plugins of one scheduler profile."""

    filters: list[FilterPlugin] = field(default_factory=default_filters)
    scorers: list[ScorePlugin] = field(default_factory=default_scorers)

    def active_filters(self, pod: PodInfo) -> list[FilterPlugin]:
        """The filters this pod needs (PreFilter ``SKIP`` drops the rest from the hot loop)."""
        return [f for f in self.filters if f.pre_filter(pod).code != Code.SKIP]


@dataclass
class ScheduleResult:
    node: str
    evaluated_nodes: int
    feasible_nodes: int
    next_start_index: int
    scores: dict[str, int]


def with_nominated(pod: PodInfo, node: NodeInfo, nominated: dict[str, list[PodInfo]] | None) -> NodeInfo:
    """The node as ``pod`` must see it: with room kept for nominated pods of at least its priority."""
    if not nominated or node.name not in nominated:
        return node
    others = [p for p in nominated[node.name] if p.key != pod.key and p.priority >= pod.priority and p.key not in node.pods]
    if not others:
        return node
    view = node.clone()
    for other in others:
        view.add_pod(other)
    return view


def filter_nodes(pod: PodInfo, nodes: Sequence[NodeInfo], filters: list[FilterPlugin], *, want: int, start: int,
                 nominated: dict[str, list[PodInfo]] | None = None) -> tuple[list[NodeInfo], dict[str, Status], int]:
    """Walk nodes from ``start`` in chunks until ``want`` feasible ones are found.

    Each chunk goes through the filters plugin by plugin (``filter_batch`` when a plugin has one:
    one tight loop instead of a call per node); a node that fails is dropped with that plugin's
    status, so every node still reports its *first* failing filter. Returns
    (feasible, failures, visited).
    """
    n = len(nodes)
    feasible: list[NodeInfo] = []
    failures: dict[str, Status] = {}
    visited = 0
    while visited < n and len(feasible) < want:
        size = min(n - visited, max(want - len(feasible), 32))
        first = (start + visited) % n
        chunk = list(nodes[first:first + size])
        if len(chunk) < size:
            chunk.extend(nodes[: size - len(chunk)])
        if nominated:
            chunk = [with_nominated(pod, node, nominated) for node in chunk]
        visited += size
        for plugin in filters:
            chunk = _filter_batch(plugin, pod, chunk, failures)
            if not chunk:
                break
        feasible.extend(chunk)
    return feasible[:want] if len(feasible) > want else feasible, failures, visited


def _filter_batch(plugin: FilterPlugin, pod: PodInfo, nodes: list[NodeInfo], failures: dict[str, Status]) -> list[NodeInfo]:
    batch = getattr(plugin, "filter_batch", None)
    if batch is not None:
        return batch(pod, nodes, failures)
    passed: list[NodeInfo] = []
    for node in nodes:
        status = plugin.filter(pod, node)
        if status is SUCCESS:  # filters return the SUCCESS singleton when a node passes
            passed.append(node)
        else:
            failures[node.name] = status
    return passed


def score_nodes(pod: PodInfo, nodes: Sequence[NodeInfo], scorers: list[ScorePlugin], *, skip_constant: bool = False) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Weighted total per node, and each plugin's normalized score per node (for explain).

    With ``skip_constant``, a plugin whose ``pre_score`` answers SKIP (it would give every node
    the same score, e.g. spreading for a pod without an owner) is left out: it cannot change the
    winner, and the scheduling hot loop saves its cost.
    """
    totals = dict.fromkeys(map(_NAME, nodes), 0)
    per_plugin: dict[str, dict[str, int]] = {}
    state: dict[str, object] = {}  # kube-scheduler's CycleState: what one plugin computed, another reuses
    for plugin in scorers:
        pre = getattr(plugin, "pre_score", None)
        if skip_constant and pre is not None and pre(pod, nodes).code == Code.SKIP:
            continue
        batch = getattr(plugin, "score_batch", None)
        raw = batch(pod, nodes, state) if batch is not None else {node.name: plugin.score(pod, node) for node in nodes}
        plugin.normalize(pod, raw)
        per_plugin[plugin.name] = raw
        weight = plugin.weight
        for name, value in raw.items():
            totals[name] += value * weight
    return totals, per_plugin


def score_totals(pod: PodInfo, nodes: Sequence[NodeInfo], scorers: list[ScorePlugin]) -> list[int]:
    """The scheduling hot path of ``score_nodes``: weighted totals aligned with ``nodes``.

    Plugins whose ``pre_score`` answers SKIP are left out (they would score every node alike);
    a plugin with ``score_list`` hands back normalized scores as a list (no per-node dicts),
    others go through ``score_batch``/``score`` and ``normalize`` as in ``score_nodes``.
    """
    totals = [0] * len(nodes)
    state: dict[str, object] = {}
    for plugin in scorers:
        pre = getattr(plugin, "pre_score", None)
        if pre is not None and pre(pod, nodes).code == Code.SKIP:
            continue
        fast = getattr(plugin, "score_list", None)
        if fast is not None:
            scores = fast(pod, nodes, state)
        else:
            batch = getattr(plugin, "score_batch", None)
            raw = batch(pod, nodes, state) if batch is not None else {node.name: plugin.score(pod, node) for node in nodes}
            plugin.normalize(pod, raw)
            scores = [raw[node.name] for node in nodes]
        weight = plugin.weight
        if weight == 1:
            totals = [t + v for t, v in zip(totals, scores)]
        else:
            totals = [t + v * weight for t, v in zip(totals, scores)]
    return totals


def select_host(totals: dict[str, int], rng: random.Random) -> str:
    """Highest score; ties broken uniformly at random (as kube-scheduler does)."""
    best = max(totals.values())
    ties = [name for name, score in totals.items() if score == best]
    return ties[0] if len(ties) == 1 else rng.choice(ties)


def schedule(pod: PodInfo, nodes: Sequence[NodeInfo], profile: Profile, *, percentage: int = 0, start: int = 0,
             rng: random.Random | None = None, nominated: dict[str, list[PodInfo]] | None = None) -> ScheduleResult:
    """Decide a node for ``pod`` or raise ``FitError``."""
    rng = rng or random.Random()
    n = len(nodes)
    if n == 0:
        raise FitError(pod, 0, {})
    want = num_feasible_nodes_to_find(n, percentage)
    feasible, failures, visited = filter_nodes(pod, nodes, profile.active_filters(pod), want=want, start=start % n, nominated=nominated)
    next_start = (start + visited) % n
    if not feasible:
        raise FitError(pod, n, failures)
    if len(feasible) == 1:
        return ScheduleResult(feasible[0].name, visited, 1, next_start, {feasible[0].name: 0})
    totals = score_totals(pod, feasible, profile.scorers)
    best = max(totals)
    ties = [i for i, score in enumerate(totals) if score == best]  # in node order, as select_host's
    chosen = feasible[ties[0] if len(ties) == 1 else rng.choice(ties)].name
    return ScheduleResult(chosen, visited, len(feasible), next_start, dict(zip(map(_NAME, feasible), totals)))
