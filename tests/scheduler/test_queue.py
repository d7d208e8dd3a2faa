"""Scheduling queue: priority order, backoff, and moving unschedulable pods on cluster events."""

from __future__ import annotations

from clusterctl.scheduler.framework import PodInfo
from clusterctl.scheduler.queue import SchedulingQueue
from tests.scheduler.objects import pod


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_priority_then_arrival_order() -> None:
    q = SchedulingQueue()
    for name, prio in (("a", 0), ("b", 10), ("c", 0), ("d", 10)):
        q.add(PodInfo.of(pod(name, priority=prio)))
    assert [q.pop_nowait().info.name for _ in range(4)] == ["b", "d", "a", "c"]  # type: ignore[union-attr]
    assert q.pop_nowait() is None


def test_unschedulable_waits_for_a_cluster_event_then_respects_backoff() -> None:
    clock = Clock()
    q = SchedulingQueue(clock=clock, initial_backoff=1.0, max_backoff=4.0, unschedulable_timeout=60)
    p = PodInfo.of(pod("p"))
    q.add(p)
    q.pop_nowait()
    q.add_unschedulable(p)
    clock.now = 5
    assert q.pop_nowait() is None, "no event yet: stays unschedulable"
    q.move_all_to_active_or_backoff()
    assert q.pop_nowait() is not None, "backoff (1 s) already over: straight to active"
    q.add_unschedulable(p)  # attempt 2 → backoff 2 s
    q.move_all_to_active_or_backoff()
    assert q.pop_nowait() is None
    clock.now = 7.01
    assert q.pop_nowait() is not None
    assert q.backoff_for(10) == 4.0


def test_event_during_the_cycle_is_not_lost() -> None:
    clock = Clock()
    q = SchedulingQueue(clock=clock, initial_backoff=1.0)
    p = PodInfo.of(pod("p"))
    q.add(p)
    q.pop_nowait()
    q.move_all_to_active_or_backoff()  # a node was added while the pod was being scheduled
    q.add_unschedulable(p)
    clock.now = 1.01
    assert q.pop_nowait() is not None


def test_unschedulable_timeout_is_a_safety_net_and_deleted_pods_vanish() -> None:
    clock = Clock()
    q = SchedulingQueue(clock=clock, initial_backoff=1.0, unschedulable_timeout=30)
    p, gone = PodInfo.of(pod("p")), PodInfo.of(pod("gone"))
    for x in (p, gone):
        q.add(x)
        q.pop_nowait()
        q.add_unschedulable(x)
    q.delete(gone.key)
    clock.now = 31
    entry = q.pop_nowait()
    assert entry is not None and entry.info.name == "p"
    assert q.pop_nowait() is None


def test_scheduler_settings_file_and_overrides(tmp_path) -> None:
    import pytest

    from clusterctl.scheduler.scheduler import SchedulerConfig

    path = tmp_path / "scheduler.yaml"
    path.write_text("percentageOfNodesToScore: 10\nrecord_scheduled_events: false\n")
    cfg = SchedulerConfig.load(path, leader_elect=True)
    assert (cfg.percentage_of_nodes_to_score, cfg.record_scheduled_events, cfg.leader_elect) == (10, False, True)
    path.write_text("percentage_of_nodes_to_scor: 10\n")
    with pytest.raises(ValueError, match="unknown scheduler setting 'percentage_of_nodes_to_scor'"):
        SchedulerConfig.load(path)
