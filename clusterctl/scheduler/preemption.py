"""Preemption: make room for a pod that fits nowhere by evicting lower-priority pods.

For every node whose failure preemption could fix (resources, host ports — not a taint or a
selector), simulate removing all lower-priority pods; if the pod then fits, *reprieve* victims
one by one, highest priority first, keeping each whose return still lets the pod fit. Among
candidate nodes pick the one whose most important victim has the lowest priority, then the
lowest sum of victim priorities, then the fewest victims (kube-scheduler's order). The victims
are evicted through the Eviction API (a plain delete when the server has no eviction
subresource), and the pod's ``status.nominatedNodeName`` is set so it waits for that room.

A pod nominated to a node where lower-priority victims are still terminating does not preempt
again (kube-scheduler's ``PodEligibleToPreemptOthers``): otherwise every retry would evict more.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from clusterctl.scheduler.cache import SchedulerCache
from clusterctl.scheduler.cycle import FitError
from clusterctl.scheduler.framework import FilterPlugin, NodeInfo, PodInfo, run_filters

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]

    def rank(self) -> tuple[int, int, int]:
        prios = [v.priority for v in self.victims]
        return (max(prios, default=-(2**31)), sum(prios), len(prios))


def eligible_to_preempt(pod: PodInfo, cache: SchedulerCache, nominated_node: str = "") -> tuple[bool, str]:
    if pod.preemption_policy == "Never":
        return False, "not eligible due to preemptionPolicy=Never."
    node = cache.node(nominated_node or pod.nominated_node) if (nominated_node or pod.nominated_node) else None
    if node is not None and any(p.terminating and p.priority < pod.priority for p in node.pods.values()):
        return False, "not eligible due to a terminating pod on the nominated node."
    return True, ""


def select_victims_on_node(pod: PodInfo, node: NodeInfo, filters: list[FilterPlugin]) -> list[PodInfo] | None:
    """The fewest lower-priority pods whose removal lets ``pod`` fit ``node``, or None."""
    potential = [p for p in node.pods.values() if p.priority < pod.priority and not p.terminating]
    if not potential:
        return None
    sim = node.clone()
    for victim in potential:
        sim.remove_pod(victim.key)
    if not run_filters(filters, pod, sim).ok:
        return None
    victims: list[PodInfo] = []
    for candidate in sorted(potential, key=lambda p: -p.priority):
        sim.add_pod(candidate)
        if not run_filters(filters, pod, sim).ok:
            sim.remove_pod(candidate.key)
            victims.append(candidate)
    return victims


def find_candidate(pod: PodInfo, error: FitError, cache: SchedulerCache, filters: list[FilterPlugin]) -> tuple[Candidate | None, str]:
    """The best node to preempt on, and the ``preemption: ...`` message when there is none."""
    verdicts: Counter[str] = Counter()
    candidates: list[Candidate] = []
    for node_name, status in error.statuses.items():
        node = cache.node(node_name)
        if node is None or not status.resolvable_by_preemption:
            verdicts[NOT_HELPFUL] += 1
            continue
        victims = select_victims_on_node(pod, node, filters)
        if not victims:
            verdicts[NO_VICTIMS] += 1
            continue
        candidates.append(Candidate(node_name, victims))
    if candidates:
        return min(candidates, key=lambda c: (c.rank(), c.node)), ""
    parts = sorted(f"{count} {reason}" for reason, count in verdicts.items())
    return None, f"preemption: 0/{error.num_all_nodes} nodes are available: {', '.join(parts)}."
