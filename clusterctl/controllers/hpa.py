"""The HorizontalPodAutoscaler controller (autoscaling/v2, CPU utilisation), with Kubernetes' formula.

Every ``sync_period`` (15 s) each HPA is reconciled: read the target's ``/scale`` (replicas and
label selector), take the target's Running and Ready pods, ask the ``PodMetricsSource`` for each
pod's CPU usage in millicores, and compute utilisation = sum(usage) / sum(cpu requests) over the
pods that have both. Then, as kube-controller-manager:
- ``desired = ceil(current * utilisation / target)``, unless ``|utilisation/target - 1| <= tolerance``
  (10%), in which case nothing changes; pods without a sample or not yet ready are filled in
  with the guess that slows the change (``replicas_for``);
- clamped to ``[minReplicas, maxReplicas]`` (condition ScalingLimited);
- scale-down stabilisation: the applied value is the highest recommendation of the last
  ``downscale_stabilization`` seconds (300 s), so a brief dip does not drop capacity; scale-up
  applies at once.
Status: currentReplicas, desiredReplicas, currentMetrics, lastScaleTime, conditions AbleToScale,
ScalingActive, ScalingLimited.

Metrics: ``PodMetricsSource`` is a Protocol; the default ``AnnotationMetrics`` reads the pod
annotation ``clusterctl.io/cpu-usage-millis`` (what hollow nodes and tests set). A source backed
by the node runtime's stats endpoint (``node_runtime.stats``: per-pod ``cpu.usageNanoCores``)
plugs in through ``metrics=`` without touching this controller.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from clusterctl.api.selectors import parse_label_selector
from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import NotFound, PermanentError
from clusterctl.client.quantity import cpu_millis
from clusterctl.client.rest import ApiClient, Obj, object_key, split_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

CPU_USAGE_ANNOTATION = "clusterctl.io/cpu-usage-millis"
SCALE_RESOURCES = {"Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets"}


class PodMetricsSource(Protocol):
    async def cpu_usage_millis(self, pods: list[Obj]) -> dict[str, int]:
        """pod key → CPU usage in millicores, for the pods it has a sample of."""


class AnnotationMetrics:
    """Usage from the pod annotation ``clusterctl.io/cpu-usage-millis`` (hollow nodes, tests)."""

    async def cpu_usage_millis(self, pods: list[Obj]) -> dict[str, int]:
        out = {}
        for pod in pods:
            value = (P.meta(pod).get("annotations") or {}).get(CPU_USAGE_ANNOTATION)
            if value is not None:
                try:
                    out[object_key(pod)] = int(value)
                except ValueError:
                    continue
        return out


def pod_cpu_request(pod: Obj) -> int:
    return sum(cpu_millis(((c.get("resources") or {}).get("requests") or {}).get("cpu") or 0) for c in (pod.get("spec") or {}).get("containers") or [])


def recommend(current: int, utilisation: float, target: float, tolerance: float) -> int:
    """Kubernetes' replica formula with its tolerance band."""
    ratio = utilisation / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return max(1, math.ceil(current * ratio))


def replicas_for(current: int, pods: list[Obj], usage: dict[str, int], target: float, tolerance: float) -> tuple[int, float] | None:
    """(recommended replicas, measured utilisation %) as Kubernetes' replica calculator, or None without metrics.

    Ready pods with a sample are measured. When some pods have no sample or are not ready yet,
    the guess that slows the change is made: scaling up, they count as using nothing; scaling
    down, pods without a sample count as using their whole request (unready ones are left out).
    If that guess flips the direction or lands in the tolerance band, nothing changes.
    """
    measured = {object_key(p): (usage[object_key(p)], pod_cpu_request(p)) for p in pods if P.is_ready(p) and object_key(p) in usage}
    if not measured:
        return None
    missing = [p for p in pods if P.is_ready(p) and object_key(p) not in usage]
    unready = [p for p in pods if not P.is_ready(p)]
    utilisation = 100.0 * sum(u for u, _ in measured.values()) / sum(r for _, r in measured.values())
    ratio = utilisation / target
    if not missing and not unready:
        if abs(ratio - 1.0) <= tolerance:
            return current, utilisation
        return max(1, math.ceil(ratio * len(measured))), utilisation
    samples = list(measured.values())
    if ratio < 1.0:
        samples += [(pod_cpu_request(p), pod_cpu_request(p)) for p in missing]
    else:
        samples += [(0, pod_cpu_request(p)) for p in missing + unready]
    new_ratio = 100.0 * sum(u for u, _ in samples) / sum(r for _, r in samples) / target
    if abs(new_ratio - 1.0) <= tolerance or (new_ratio > 1.0) != (ratio > 1.0):
        return current, utilisation
    return max(1, math.ceil(new_ratio * len(samples))), utilisation


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 2, clock: Callable[[], float] = time.time,
                 sync_period: float = 15.0, tolerance: float = 0.1, downscale_stabilization: float = 300.0,
                 metrics: PodMetricsSource | None = None) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.sync_period = sync_period
        self.tolerance = tolerance
        self.stabilization = downscale_stabilization
        self.metrics: PodMetricsSource = metrics or AnnotationMetrics()
        self.hpas = informers.get("horizontalpodautoscalers")
        self.pods = informers.get("pods")
        self.events = EventRecorder(client, component=self.name, clock=clock)
        self.recommendations: dict[str, list[tuple[float, int]]] = {}
        self.watch(self.hpas)

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick(), name=f"{self.name}:tick")
        try:
            await super().run()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.sync_period)
            for hpa in self.hpas.list():
                self.queue.add(object_key(hpa))

    async def reconcile(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self.recommendations.pop(key, None)
            return
        namespace, _ = split_key(key)
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        resource = SCALE_RESOURCES.get(ref.get("kind", ""))
        if resource is None:
            raise PermanentError(f"{key}: cannot scale a {ref.get('kind')}")
        try:
            scale = await self.client.get(resource, ref.get("name", ""), namespace=namespace, subresource="scale")
        except NotFound:
            await self.write_status(hpa, None, None, None, able=False, reason="FailedGetScale", message=f"{ref.get('kind')} {ref.get('name')} not found")
            return
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        target = self.cpu_target(spec)
        if current == 0 or target is None:
            return  # scaled to zero by hand: autoscaling is off, as Kubernetes
        selector = parse_label_selector((scale.get("status") or {}).get("selector") or "")
        pods = [p for p in self.pods.by_index("namespace", namespace)
                if selector.matches(P.meta(p).get("labels") or {}) and P.is_active(p) and pod_cpu_request(p) > 0]
        usage = await self.metrics.cpu_usage_millis([p for p in pods if P.is_ready(p)])
        result = replicas_for(current, pods, usage, float(target), self.tolerance)
        if result is None:
            await self.write_status(hpa, current, current, None, able=True, reason="FailedGetResourceMetric",
                                    message="no CPU metrics (or requests) for the target's pods", active=False)
            return
        raw, utilisation = result
        lo, hi = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or current)
        limited = raw < lo or raw > hi
        wanted = min(hi, max(lo, raw))
        desired = self.stabilize(key, wanted, current)
        if desired != current:
            await self.client.patch(resource, ref["name"], {"spec": {"replicas": desired}}, namespace=namespace, subresource="scale")
            await self.events.record(hpa, "Normal", "SuccessfulRescale",
                                     f"New size: {desired}; reason: cpu resource utilization (percentage of request) above target"
                                     if desired > current else f"New size: {desired}; reason: All metrics below target")
        await self.write_status(hpa, current, desired, int(utilisation), able=True, reason="ValidMetricFound", message="",
                                limited=limited, scaled=desired != current)

    @staticmethod
    def cpu_target(spec: dict[str, Any]) -> int | None:
        for metric in spec.get("metrics") or []:
            res = metric.get("resource") or {}
            if metric.get("type") == "Resource" and res.get("name") == "cpu" and (res.get("target") or {}).get("type") == "Utilization":
                return int(res["target"].get("averageUtilization") or 80)
        return None

    def stabilize(self, key: str, wanted: int, current: int) -> int:
        now = self.clock()
        history = [(t, r) for t, r in self.recommendations.get(key, []) if now - t <= self.stabilization]
        history.append((now, wanted))
        self.recommendations[key] = history
        if wanted >= current:
            return wanted
        return min(current, max(r for _, r in history))

    async def write_status(self, hpa: Obj, current: int | None, desired: int | None, utilisation: int | None, *, able: bool,
                           reason: str, message: str, active: bool = True, limited: bool = False, scaled: bool = False) -> None:
        stamp = P.format_time(self.clock())
        old = hpa.get("status") or {}
        status: dict[str, Any] = dict(old)
        if current is not None:
            status["currentReplicas"] = current
        if desired is not None:
            status["desiredReplicas"] = desired
        if scaled:
            status["lastScaleTime"] = stamp
        if utilisation is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": utilisation}}}]
        status["observedGeneration"] = int(P.meta(hpa).get("generation") or 0)
        conds = list(old.get("conditions") or [])
        conds = P.set_condition(conds, {"type": "AbleToScale", "status": "True" if able else "False",
                                        "reason": "SucceededRescale" if able else reason, "message": message}, stamp)
        conds = P.set_condition(conds, {"type": "ScalingActive", "status": "True" if active and able else "False",
                                        "reason": reason, "message": message}, stamp)
        conds = P.set_condition(conds, {"type": "ScalingLimited", "status": "True" if limited else "False",
                                        "reason": "TooManyReplicas" if limited else "DesiredWithinRange", "message": ""}, stamp)
        status["conditions"] = conds
        if status == old:
            return
        m = P.meta(hpa)
        try:
            await self.client.patch("horizontalpodautoscalers", m["name"], {"status": status}, namespace=m.get("namespace"), subresource="status")
        except NotFound:
            pass
