"""Filter and score plugins as tables: (pod, node[, pods on it]) → verdict and reason."""

from __future__ import annotations

import random

import pytest

from clusterctl.scheduler.cache import SchedulerCache
from clusterctl.scheduler.cycle import Profile, num_feasible_nodes_to_find, schedule, score_nodes, score_totals
from clusterctl.scheduler.framework import NodeInfo, PodInfo, fits, pod_requests
from clusterctl.scheduler.plugins.allocation import BalancedAllocation, LeastAllocated
from tests.scheduler.objects import node, pod

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
TOLERATE = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]


def info(n: dict, *pods_on_it: dict) -> NodeInfo:
    ni = NodeInfo.of(n)
    for p in pods_on_it:
        ni.add_pod(PodInfo.of(p))
    return ni


CASES = [
    # (id, pod, node, pods on node, expected reason or None)
    ("fits", pod("p", cpu="1"), node("n"), [], None),
    ("not ready", pod("p"), node("n", ready=False), [], "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
    ("no conditions yet", pod("p"), node("n", ready=None), [], "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
    ("not ready tolerated", pod("p", tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]), node("n", ready=False), [], None),
    ("cordoned", pod("p"), node("n", unschedulable=True), [], "node(s) were unschedulable"),
    ("cordon tolerated", pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]),
     node("n", unschedulable=True), [], None),
    ("cpu", pod("p", cpu="3"), node("n", cpu="4"), [pod("a", cpu="2", node_name="n")], "Insufficient cpu"),
    ("memory", pod("p", memory="5Gi"), node("n", memory="8Gi"), [pod("a", memory="4Gi", node_name="n")], "Insufficient memory"),
    ("pod count", pod("p"), node("n", pods=1), [pod("a", node_name="n")], "Too many pods"),
    ("init container max rule", pod("p", cpu="1", init_cpu="3500m"), node("n", cpu="4"), [pod("a", cpu="1", node_name="n")], "Insufficient cpu"),
    ("selector ok", pod("p", node_selector={"disk": "ssd"}), node("n", labels={"disk": "ssd"}), [], None),
    ("selector miss", pod("p", node_selector={"disk": "ssd"}), node("n", labels={"disk": "hdd"}), [], "node(s) didn't match Pod's node affinity/selector"),
    ("affinity In", pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}), node("n", labels={"zone": "b"}), [], None),
    ("affinity NotIn", pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}}), node("n", labels={"zone": "b"}), [],
     "node(s) didn't match Pod's node affinity/selector"),
    ("affinity Gt + matchFields", pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}], "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}}),
     node("n", labels={"cores": "16"}), [], None),
    ("taint", pod("p"), node("n", taints=[TAINT]), [], "node(s) had untolerated taint {dedicated: gpu}"),
    ("taint tolerated", pod("p", tolerations=TOLERATE), node("n", taints=[TAINT]), [], None),
    ("NoExecute taint", pod("p"), node("n", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]), [], "node(s) had untolerated taint {k: v}"),
    ("PreferNoSchedule does not filter", pod("p"), node("n", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), [], None),
    ("wildcard toleration", pod("p", tolerations=[{"operator": "Exists"}]), node("n", taints=[TAINT]), [], None),
    ("host port conflict", pod("p", host_port=8080), node("n"), [pod("a", host_port=8080, node_name="n")],
     "node(s) didn't have free ports for the requested pod ports"),
    ("host port free", pod("p", host_port=8081), node("n"), [pod("a", host_port=8080, node_name="n")], None),
]


@pytest.mark.parametrize(("case", "p", "n", "others", "reason"), CASES, ids=[c[0] for c in CASES])
def test_filters(case: str, p: dict, n: dict, others: list[dict], reason: str | None) -> None:
    status = fits(p, info(n, *others))
    if reason is None:
        assert status.ok, f"{case}: {status}"
    else:
        assert not status.ok and reason in status.reasons, f"{case}: got {status}"


def test_requests_follow_init_container_max_rule_and_sidecars() -> None:
    p = pod("p", cpu="500m", memory="1Gi", init_cpu="2")
    assert pod_requests(p) == (2000, 1024**3)
    p["spec"]["initContainers"].append({"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}})
    assert pod_requests(p) == (2100, 1024**3)
    assert pod_requests(pod("empty"), non_zero=True) == (100, 200 * 1024 * 1024)


def test_least_allocated_prefers_emptier_and_balanced_prefers_even_nodes() -> None:
    p = PodInfo.of(pod("p", cpu="1", memory="1Gi"))
    empty = info(node("empty"))
    busy = info(node("busy"), pod("a", cpu="2", memory="4Gi", node_name="busy"))
    assert LeastAllocated().score(p, empty) > LeastAllocated().score(p, busy)
    cpu_heavy = info(node("cpuheavy"), pod("b", cpu="3", memory="100Mi", node_name="cpuheavy"))
    even = info(node("even"), pod("c", cpu="2", memory="4Gi", node_name="even"))
    assert BalancedAllocation().score(p, even) > BalancedAllocation().score(p, cpu_heavy)


def _cache(*nodes: dict, pods: list[dict] = ()) -> SchedulerCache:  # type: ignore[assignment]
    cache = SchedulerCache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.add_pod(PodInfo.of(p), p["spec"]["nodeName"])
    return cache


def test_spread_puts_same_owner_pods_on_different_nodes() -> None:
    cache = _cache(node("a"), node("b"), node("c"), pods=[pod("x1", owner="rs", node_name="a"), pod("x2", owner="rs", node_name="b")])
    result = schedule(PodInfo.of(pod("x3", owner="rs")), cache.node_list(), Profile(), rng=random.Random(1))
    assert result.node == "c"


def test_preferred_affinity_and_prefer_no_schedule_steer_the_choice() -> None:
    cache = _cache(node("plain"), node("fast", labels={"disk": "ssd"}), node("tainted", labels={"disk": "ssd"}, taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    for seed in range(5):
        assert schedule(PodInfo.of(pod("p", affinity=pref)), cache.node_list(), Profile(), rng=random.Random(seed)).node == "fast"


def test_sampling_counts_follow_kube_scheduler() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(1000) == 420  # 50 - 1000/125 = 42 %
    assert num_feasible_nodes_to_find(5000) == 500  # 10 %
    assert num_feasible_nodes_to_find(1000, 10) == 100
    assert num_feasible_nodes_to_find(100000) == 5000  # floor of 5 %


def test_sampling_stops_early_but_rotates_over_all_nodes() -> None:
    cache = _cache(*(node(f"n{i:04d}") for i in range(1000)))
    start, visited_nodes = 0, set()
    for i in range(3):
        result = schedule(PodInfo.of(pod(f"p{i}")), cache.node_list(), Profile(), percentage=10, start=start, rng=random.Random(i))
        assert result.evaluated_nodes == 100 and result.feasible_nodes == 100
        visited_nodes.add(result.node)
        assert start <= int(result.node[1:]) < start + 100
        start = result.next_start_index
    assert start == 300


def test_memoized_allocation_scores_follow_every_change_of_the_node() -> None:
    """Scores memoized between cycles are exactly what a fresh computation gives, after the node
    took a pod, lost it, or changed its allocatable — and the hot path picks what the explain
    path (score_nodes over dicts) would."""
    cache = _cache(*(node(f"n{i}", cpu=str(2 + i % 3), memory=f"{4 + i % 5}Gi") for i in range(12)))
    small, big = PodInfo.of(pod("s", cpu="100m", memory="64Mi")), PodInfo.of(pod("b", cpu="1", memory="1Gi"))
    profile = Profile()

    def fresh(p: PodInfo) -> list[int]:
        nodes = cache.node_list()
        for n in nodes:
            n.score_memo = None
        return score_totals(p, nodes, profile.scorers)

    def check(p: PodInfo) -> None:
        nodes = cache.node_list()
        memoized = score_totals(p, nodes, profile.scorers)
        totals, _ = score_nodes(p, nodes, profile.scorers, skip_constant=True)
        assert memoized == [totals[n.name] for n in nodes] == fresh(p)

    for p in (small, big, small):
        check(p)
    cache.assume(PodInfo.of(pod("x", cpu="1500m", memory="3Gi")), "n3")
    check(small)
    check(big)
    cache.remove_pod("default/x")
    check(small)
    cache.set_node(node("n5", cpu="16", memory="64Gi"))
    check(big)
    assert schedule(big, cache.node_list(), profile, rng=random.Random(0)).node == "n5"
