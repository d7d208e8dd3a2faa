"""The running scheduler: informers → scheduling queue → one decision at a time → async binding.

One loop takes the highest-priority pending pod, decides its node from the in-memory cache
(``cycle.schedule``, no API calls), *assumes* it onto that node and hands the ``pods/binding``
call to a bounded pool of binding tasks — so the next decision starts at once, as in
kube-scheduler. Failures:
- no node fits → ``PodScheduled=False, reason Unschedulable`` with Kubernetes' message, a
  ``FailedScheduling`` Event, preemption if the pod's priority allows; the pod waits in the
  unschedulable queue until a node is added/changed or a pod goes away;
- binding fails → the assumption is forgotten and the pod retried after backoff (unless it was
  deleted or bound by someone else).
Only pods with ``spec.schedulerName`` equal to ours (default ``default-scheduler``) are ours.
``run_scheduler(client, config=...)`` is the entry point the control plane calls; with
``leader_elect`` it only schedules while holding the ``kube-scheduler`` Lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clusterctl.client.controller import EventRecorder
from clusterctl.client.errors import ApiConnectionError, ApiError, Conflict, NotFound
from clusterctl.client.informer import Informer
from clusterctl.client.leaderelection import LeaderElector
from clusterctl.client.rest import ApiClient, Obj
from clusterctl.scheduler.cache import SchedulerCache
from clusterctl.scheduler.cycle import FitError, Profile, schedule
from clusterctl.scheduler.framework import PodInfo, pod_key
from clusterctl.scheduler.preemption import eligible_to_preempt, find_candidate
from clusterctl.scheduler.queue import SchedulingQueue

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class SchedulerConfig:
    """Knobs (all timings injectable so tests never wait for Kubernetes' real ones)."""

    scheduler_name: str = "default-scheduler"
    percentage_of_nodes_to_score: int = 0  # 0 = adaptive, as kube-scheduler
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    unschedulable_timeout: float = 60.0
    bind_concurrency: int = 64
    status_concurrency: int = 16
    record_scheduled_events: bool = True
    #: Events wait here for ``event_writers`` background posts; a full queue drops (and counts) them.
    #: Sized for a burst of 10,000+ bindings: one Scheduled Event each, posted behind the bindings.
    event_queue_size: int = 20000
    event_writers: int = 4
    leader_elect: bool = False
    lease_namespace: str = "kube-system"
    lease_name: str = "kube-scheduler"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{os.uname().nodename}_{uuid.uuid4().hex[:8]}")

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> SchedulerConfig:
        """From a YAML file of settings (``percentage_of_nodes_to_score: 10``...); ``overrides`` win."""
        import yaml

        try:
            data = yaml.safe_load(open(path).read()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read scheduler config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"scheduler config {path}: expected a mapping")
        return cls.from_dict({**data, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SchedulerConfig:
        """From the control-plane config's ``scheduler:`` section (snake_case or camelCase keys)."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {}
        for key, value in (data or {}).items():
            snake = "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_")
            if snake in known:
                kwargs[snake] = value
            else:
                raise ValueError(f"unknown scheduler setting {key!r}")
        return cls(**kwargs)


@dataclass
class SchedulerStats:
    attempts: int = 0
    scheduled: int = 0
    bound: int = 0
    unschedulable: int = 0
    bind_errors: int = 0
    preemptions: int = 0
    cycle_seconds: float = 0.0


class Scheduler:
    def __init__(self, client: ApiClient, config: SchedulerConfig | None = None, *, profile: Profile | None = None,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.client = client
        self.config = config or SchedulerConfig()
        self.profile = profile or Profile()
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(clock=clock, initial_backoff=self.config.initial_backoff, max_backoff=self.config.max_backoff,
                                     unschedulable_timeout=self.config.unschedulable_timeout)
        self.rng = rng or random.Random()
        self.stats = SchedulerStats()
        self.events = EventRecorder(client, component=self.config.scheduler_name, queue_size=self.config.event_queue_size,
                                    writers=self.config.event_writers)
        self.pods = Informer(client, "pods")
        self.nodes = Informer(client, "nodes")
        self.nominated: dict[str, list[PodInfo]] = {}
        self._nominated_of: dict[str, str] = {}
        self._start_index = 0
        self._bind_sem = asyncio.Semaphore(self.config.bind_concurrency)
        self._status_sem = asyncio.Semaphore(self.config.status_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_message: dict[str, tuple[str, str]] = {}
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted)

    # ----------------------------------------------------------------- pod info

    @staticmethod
    def pod_info(pod: Obj) -> PodInfo:
        """The pod as the scheduler sees it; ``spec.priority`` was resolved from the PriorityClass
        by the API server's priority admission when the pod was created."""
        return PodInfo.of(pod)

    # ----------------------------------------------------------------- informer handlers

    def _ours(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or "default-scheduler") == self.config.scheduler_name

    @staticmethod
    def _pending(pod: Obj) -> bool:
        return not (pod.get("spec") or {}).get("nodeName") and not (pod.get("metadata") or {}).get("deletionTimestamp") \
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES

    def _pod_added(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            if (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
                self.cache.add_pod(self.pod_info(pod), node)
            self._clear_nomination(pod_key(pod))
        elif self._pending(pod) and self._ours(pod):
            self.queue.add(self.pod_info(pod))

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        key = pod_key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.queue.delete(key)
            self._clear_nomination(key)
            if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
                if self.cache.node_of(key) is not None:  # a finished pod frees its node's resources
                    self.cache.remove_pod(key)
                    self.queue.move_all_to_active_or_backoff()
                return
            known = self.cache.pod(key)
            if known is not None and self.cache.node_of(key) == node and known.uid == (pod.get("metadata") or {}).get("uid"):
                # A status change of a pod we already count (or the binding we assumed): what the
                # scheduler counts (requests, ports, owner) cannot change on a bound pod.
                self.cache.assumed.discard(key)
                known.terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
                known.pod = pod
            else:
                self.cache.add_pod(self.pod_info(pod), node)
        elif self._pending(pod) and self._ours(pod):
            if key in self.cache.assumed:
                # Scheduled and being bound: the informer has not seen the binding yet. An update
                # now (typically our own earlier PodScheduled=False status write landing late) must
                # not queue it again — a second cycle would count it on its node and might preempt
                # for it elsewhere (as Kubernetes, skip assumed pods).
                return
            if _scheduling_inputs(old) == _scheduling_inputs(pod) and self.queue.is_unschedulable(key):
                return  # only its status changed (often our own PodScheduled=False): no reason to retry
            self.queue.add(self.pod_info(pod))
        else:
            self.queue.delete(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        self._clear_nomination(key)
        self._last_message.pop(key, None)
        if self.cache.node_of(key) is not None:
            self.cache.remove_pod(key)
            self.queue.move_all_to_active_or_backoff()

    def _node_added(self, node: Obj) -> None:
        self.cache.set_node(node)
        self.queue.move_all_to_active_or_backoff()

    def _node_updated(self, old: Obj, node: Obj) -> None:
        self.cache.set_node(node)
        if _scheduling_relevant(old) != _scheduling_relevant(node):
            self.queue.move_all_to_active_or_backoff()

    def _node_deleted(self, node: Obj) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    # ----------------------------------------------------------------- nominations

    def _nominate(self, info: PodInfo, node: str) -> None:
        self._clear_nomination(info.key)
        self.nominated.setdefault(node, []).append(info)
        self._nominated_of[info.key] = node

    def _clear_nomination(self, key: str) -> None:
        node = self._nominated_of.pop(key, None)
        if node is None:
            return
        left = [p for p in self.nominated.get(node, []) if p.key != key]
        if left:
            self.nominated[node] = left
        else:
            self.nominated.pop(node, None)

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        """Informers, then the scheduling loop, until cancelled."""
        tasks: list[asyncio.Task[Any]] = []
        try:
            for informer in (self.nodes, self.pods):
                tasks.append(asyncio.create_task(informer.run(), name=f"scheduler:informer:{informer.resource}"))
                await informer.wait_for_sync()
            log.info("scheduler %s: caches synced (%d nodes, %d pods)", self.config.scheduler_name, len(self.cache), len(self.pods.list()))
            while True:
                entry = await self.queue.pop()
                self.schedule_one(entry.info)
                # A cycle is pure CPU: yield after each one, so informers, bindings — and, in the
                # control-plane process, the API server itself — are never starved by a burst.
                await asyncio.sleep(0)
        finally:
            self.queue.close()
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.events.close()

    def schedule_one(self, queued: PodInfo) -> None:
        """One cycle for one pod; never awaits (API work is spawned)."""
        current = self.pods.get(queued.key)
        if current is None or not self._pending(current) or queued.key in self.cache.assumed:
            self.queue.done(queued.key)  # gone, bound, or assumed (binding in flight): nothing to do
            return
        info = queued if queued.pod is current else self.pod_info(current)
        self.stats.attempts += 1
        started = time.perf_counter()
        nodes = self.cache.node_list()
        try:
            result = schedule(info, nodes, self.profile, percentage=self.config.percentage_of_nodes_to_score,
                              start=self._start_index, rng=self.rng, nominated=self.nominated or None)
        except FitError as error:
            self.stats.cycle_seconds += time.perf_counter() - started
            self._handle_unschedulable(info, current, error)
            return
        self.stats.cycle_seconds += time.perf_counter() - started
        self._start_index = result.next_start_index
        self.stats.scheduled += 1
        self.cache.assume(info, result.node)
        self._clear_nomination(info.key)
        self.queue.done(info.key)
        self._spawn(self._bind(info, current, result.node))

    def _handle_unschedulable(self, info: PodInfo, pod: Obj, error: FitError) -> None:
        self.stats.unschedulable += 1
        ok, why_not = eligible_to_preempt(info, self.cache, self._nominated_of.get(info.key, ""))
        nominated_node = ""
        if not ok:
            error.post_filter_message = f"preemption: {why_not}"
        else:
            candidate, message = find_candidate(info, error, self.cache, self.profile.active_filters(info))
            if candidate is None:
                error.post_filter_message = message
            else:
                nominated_node = candidate.node
                self.stats.preemptions += 1
                self._nominate(info, candidate.node)
                for victim in candidate.victims:
                    victim.terminating = True  # counted until gone, never picked twice
                    self._spawn(self._evict(victim, info, candidate.node))
        self.queue.add_unschedulable(info)
        message = error.message
        log.info("scheduler: %s unschedulable: %s", info.key, message)
        self._spawn(self._report_unschedulable(pod, message, nominated_node))

    # ----------------------------------------------------------------- API work

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, info: PodInfo, pod: Obj, node: str) -> None:
        async with self._bind_sem:
            try:
                await self.client.bind(info.namespace, info.name, node, uid=info.uid or None)
            except asyncio.CancelledError:
                raise
            except NotFound:
                self.cache.forget(info.key)  # deleted meanwhile: nothing to do
                return
            except (ApiError, ApiConnectionError) as exc:
                self.stats.bind_errors += 1
                self.cache.forget(info.key)
                latest = self.pods.get(info.key)
                if isinstance(exc, Conflict) and latest is not None and (latest.get("spec") or {}).get("nodeName"):
                    return  # someone bound it already
                log.warning("scheduler: binding %s to %s failed: %s; retrying", info.key, node, exc)
                self.queue.add_backoff(info)
                return
        self.stats.bound += 1
        if self.config.record_scheduled_events:
            self.events.emit(pod, "Normal", "Scheduled", f"Successfully assigned {info.key} to {node}")

    async def _evict(self, victim: PodInfo, preemptor: PodInfo, node: str) -> None:
        try:
            try:
                await self.client.evict(victim.namespace, victim.name, grace_period_seconds=0)
            except NotFound:
                # No eviction subresource on this server (or the pod is gone): delete it.
                await self.client.delete("pods", victim.name, namespace=victim.namespace, grace_period_seconds=0)
        except NotFound:
            return
        except (ApiError, ApiConnectionError) as exc:
            log.warning("scheduler: preempting %s for %s failed: %s", victim.key, preemptor.key, exc)
            return
        self.events.emit(victim.pod, "Normal", "Preempted", f"Preempted by pod {preemptor.uid} on node {node}")

    async def _report_unschedulable(self, pod: Obj, message: str, nominated_node: str) -> None:
        key = pod_key(pod)
        self.events.emit(pod, "Warning", "FailedScheduling", message)
        if self._last_message.get(key) == (message, nominated_node):
            return
        async with self._status_sem:
            for _ in range(3):
                fresh = self.pods.get(key) or pod
                if not self._pending(fresh):
                    return
                status = dict(fresh.get("status") or {})
                conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
                conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                                   "lastProbeTime": None, "lastTransitionTime": _now()})
                status["conditions"] = conditions
                status.setdefault("phase", "Pending")
                if nominated_node:
                    status["nominatedNodeName"] = nominated_node
                try:
                    await self.client.update_status(dict(fresh, status=status))
                    self._last_message[key] = (message, nominated_node)
                    return
                except Conflict:
                    try:
                        fresh = await self.client.get("pods", pod["metadata"]["name"], namespace=pod["metadata"].get("namespace"))
                    except (ApiError, ApiConnectionError):
                        return
                    self.pods.apply_event("MODIFIED", fresh)
                except (ApiError, ApiConnectionError) as exc:
                    log.warning("scheduler: cannot set PodScheduled on %s: %s", key, exc)
                    return


def _scheduling_inputs(pod: Obj) -> tuple[Any, ...]:
    """What a pod update must change for a retry to be worth it (not status, not resourceVersion)."""
    meta = pod.get("metadata") or {}
    return (pod.get("spec"), meta.get("labels"), meta.get("annotations"), meta.get("deletionTimestamp"))


def _scheduling_relevant(node: Obj) -> tuple[Any, ...]:
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    meta = node.get("metadata") or {}
    return (str(status.get("allocatable")), str(meta.get("labels")), str((node.get("spec") or {}).get("taints")),
            (node.get("spec") or {}).get("unschedulable"), ready)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def run_scheduler(client: ApiClient, *, config: SchedulerConfig | dict[str, Any] | None = None) -> None:
    """Run the scheduler until cancelled (behind a Lease when ``leader_elect``)."""
    cfg = config if isinstance(config, SchedulerConfig) else SchedulerConfig.from_dict(config)
    if not cfg.leader_elect:
        await Scheduler(client, cfg).run()
        return

    async def lead() -> None:
        await Scheduler(client, cfg).run()  # a fresh cache per term: no stale assumptions

    elector = LeaderElector(client, lease_name=cfg.lease_name, namespace=cfg.lease_namespace, identity=cfg.identity,
                            lease_duration=cfg.lease_duration, renew_deadline=cfg.renew_deadline, retry_period=cfg.retry_period,
                            on_started_leading=lead)
    await elector.run()


#: optional scheduler settings beside the control-plane config (``<data_dir>/scheduler.yaml``)
SETTINGS_FILE = "scheduler.yaml"


def control_plane_component(config: SchedulerConfig | dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """A control-plane component (``async def component(ctx)``) running the scheduler with ``config``.

    Settings come from ``config`` or, when present, ``<data_dir>/scheduler.yaml``. It reaches its
    own server through ``ctx.kubeconfig`` (the admin kubeconfig the control plane
    writes once it listens), exactly like an external scheduler would: only the API server
    touches the store. Leader election is on by default, so several control planes sharing one
    etcd never both schedule.
    """
    async def scheduler_component(ctx: Any) -> None:
        kubeconfig = getattr(ctx, "kubeconfig", None) or ctx.config.path(ctx.config.kubeconfig)
        if isinstance(config, SchedulerConfig):
            cfg = config
        elif ctx.config.path(SETTINGS_FILE).exists():
            cfg = SchedulerConfig.load(ctx.config.path(SETTINGS_FILE), leader_elect=True, **(config or {}))
        else:
            cfg = SchedulerConfig.from_dict({"leader_elect": True, **(config or {})})
        client = ApiClient.from_kubeconfig(str(kubeconfig), max_connections=96)
        try:
            await run_scheduler(client, config=cfg)
        finally:
            await asyncio.shield(client.close())

    return scheduler_component


#: for the control-plane config's ``components`` list: ``"clusterctl.scheduler.scheduler:scheduler_component"``
scheduler_component = control_plane_component()


async def scheduler_process_component(ctx: Any, *, restart_delay: float = 1.0) -> None:
    """A control-plane component that runs the scheduler as a supervised child process.

    ``"clusterctl.scheduler.scheduler:scheduler_process_component"``. Same behaviour as
    ``scheduler_component`` (leader-elected client of the API), but on its own interpreter: the
    scheduling cycles no longer share the API server's GIL, so a control-plane host uses two
    cores (kube-scheduler is a separate process for the same reason). The child is restarted if
    it dies and terminated when the control plane stops; its output goes to the control plane's.
    """
    import sys

    kubeconfig = getattr(ctx, "kubeconfig", None) or ctx.config.path(ctx.config.kubeconfig)
    args = ["--kubeconfig", str(kubeconfig), "--leader-elect"]
    settings = ctx.config.path(SETTINGS_FILE)
    if settings.exists():
        args += ["--config", str(settings)]
    while True:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "clusterctl.scheduler.cli", *args)
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            await asyncio.shield(_stop_child(proc))
            raise
        log.warning("scheduler process exited with %s; restarting in %.0fs", code, restart_delay)
        await asyncio.sleep(restart_delay)


async def _stop_child(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
