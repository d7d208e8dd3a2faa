"""The unschedulable message, the explain table, and preemption's victim choice (pure)."""

from __future__ import annotations

import pytest

from clusterctl.scheduler.cache import SchedulerCache
from clusterctl.scheduler.cycle import FitError, Profile, schedule
from clusterctl.scheduler.explain import explain, render_explain_table
from clusterctl.scheduler.framework import PodInfo
from clusterctl.scheduler.preemption import find_candidate
from tests.scheduler.objects import node, pod

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def cluster() -> tuple[list[dict], list[dict]]:
    nodes = [node("n1", cpu="2"), node("n2", cpu="2"), node("n3", cpu="8", taints=[TAINT])]
    pods = [pod("a", cpu="1500m", node_name="n1", priority=0), pod("b", cpu="1", node_name="n2", priority=100)]
    return nodes, pods


def test_fit_error_message_is_kubernetes_wording() -> None:
    nodes, pods = cluster()
    cache = SchedulerCache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.add_pod(PodInfo.of(p), p["spec"]["nodeName"])
    with pytest.raises(FitError) as err:
        schedule(PodInfo.of(pod("big", cpu="1500m")), cache.node_list(), Profile())
    assert str(err.value) == "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."


def test_preemption_picks_the_node_with_lowest_priority_victims_and_says_why_not_elsewhere() -> None:
    nodes, pods = cluster()
    cache = SchedulerCache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.add_pod(PodInfo.of(p), p["spec"]["nodeName"])
    urgent = PodInfo.of(pod("urgent", cpu="1500m", priority=1000))
    with pytest.raises(FitError) as err:
        schedule(urgent, cache.node_list(), Profile())
    candidate, _ = find_candidate(urgent, err.value, cache, Profile().active_filters(urgent))
    assert candidate is not None and candidate.node == "n1" and [v.name for v in candidate.victims] == ["a"]
    # a pod of priority 50 may only take n1's priority-0 pod; a pod of priority 0 may take nothing
    low = PodInfo.of(pod("low", cpu="1500m", priority=0))
    with pytest.raises(FitError) as err2:
        schedule(low, cache.node_list(), Profile())
    candidate, message = find_candidate(low, err2.value, cache, Profile().active_filters(low))
    assert candidate is None
    assert message == ("preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
                       "2 No preemption victims found for incoming pod.")


def test_explain_table_names_each_nodes_reason_and_scores() -> None:
    nodes, pods = cluster()
    nodes.append(node("n4", cpu="4"))
    table = explain(pod("web", cpu="1"), nodes, pods)
    rows = {r.node: r for r in table.rows}
    assert rows["n1"].reasons == ["Insufficient cpu"]
    assert rows["n3"].reasons == ["node(s) had untolerated taint {dedicated: gpu}"]
    assert rows["n2"].feasible and rows["n4"].feasible
    assert rows["n3"].filters["NodeSelector"] == "skip" and rows["n3"].filters["TaintToleration"] == "fail"
    assert table.chosen == "n4"  # emptier than n2
    text = render_explain_table(table)
    assert "Pod default/web" in text
    assert text.splitlines()[2].startswith("n4*")
    assert "node(s) had untolerated taint {dedicated: gpu}" in text
    assert text.rstrip().endswith("2/4 nodes fit; best score %d on n4; would bind to n4" % rows["n4"].total)


def test_explain_for_a_pod_that_fits_nowhere_ends_with_the_scheduler_message() -> None:
    nodes, pods = cluster()
    text = render_explain_table(explain(pod("huge", cpu="16"), nodes, pods))
    assert text.rstrip().endswith("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.")
