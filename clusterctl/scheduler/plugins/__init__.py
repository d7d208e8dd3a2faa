"""Scheduler plugins, one module each; ``default_filters()``/``default_scorers()`` give the profile.

Filter order follows kube-scheduler's default profile (cheap, decisive checks first); a node's
reported reason is the first failing filter's.
"""

from __future__ import annotations

from clusterctl.scheduler.framework import FilterPlugin, ScorePlugin
from clusterctl.scheduler.plugins.allocation import BalancedAllocation, LeastAllocated
from clusterctl.scheduler.plugins.host_ports import HostPorts
from clusterctl.scheduler.plugins.node_affinity import NodeAffinity
from clusterctl.scheduler.plugins.node_ready_schedulable import NodeReadySchedulable
from clusterctl.scheduler.plugins.node_selector import NodeSelector
from clusterctl.scheduler.plugins.resources import NodeResourcesFit
from clusterctl.scheduler.plugins.spread import OwnerSpread
from clusterctl.scheduler.plugins.taints_tolerations import TaintToleration


def default_filters() -> list[FilterPlugin]:
    return [NodeReadySchedulable(), TaintToleration(), NodeSelector(), NodeAffinity(), HostPorts(), NodeResourcesFit()]


def default_scorers() -> list[ScorePlugin]:
    return [TaintToleration(), NodeAffinity(), OwnerSpread(), LeastAllocated(), BalancedAllocation()]
