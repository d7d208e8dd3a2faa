"""Pod status as kubectl shows it, computed from what the pod worker knows about its containers.

``ContainerRecord`` is the worker's view of one container (state, last state, restarts, probes);
``pod_status(...)`` turns the records into ``status`` — phase, conditions (PodScheduled,
PodReadyToStartContainers, Initialized, ContainersReady, Ready), init/containerStatuses, podIP(s),
hostIP(s), startTime, qosClass — reusing the previous status's ``lastTransitionTime`` for
conditions that did not change, so that an unchanged pod produces an identical status and the
worker can skip the write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def rfc3339(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


@dataclass
class ContainerRecord:
    name: str
    image: str
    init: bool = False
    image_id: str = ""
    runtime_id: str | None = None          # the runtime's id of the current instance
    restart_count: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool | None = None             # startup probe passed (or none) while running
    has_readiness: bool = False
    done: bool = False                       # terminated and will not run again

    def to_status(self, runtime_scheme: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "image": self.image, "imageID": self.image_id,
            "ready": self.ready, "restartCount": self.restart_count, "state": self.state,
            "lastState": self.last_state,
        }
        if self.runtime_id:
            out["containerID"] = f"{runtime_scheme}://{self.runtime_id}"
        if not self.init:
            out["started"] = bool(self.started)
        return out

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> dict | None:
        return self.state.get("terminated")


def _condition(ctype: str, ok: bool, previous: dict[str, dict], reason: str = "", message: str = "") -> dict:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    when = prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get("lastTransitionTime") else rfc3339()
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": when}
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def phase_of(init: list[ContainerRecord], containers: list[ContainerRecord], restart_policy: str, *, init_failed: bool) -> str:
    if init_failed:
        return "Failed"
    if any(not c.done for c in init):
        return "Pending"
    if any(c.running for c in containers):
        return "Running"
    terminated = [c.terminated for c in containers]
    if all(t is not None for t in terminated) and all(c.done for c in containers):
        return "Succeeded" if all(t.get("exitCode") == 0 for t in terminated) else "Failed"
    if any(c.terminated is not None or c.restart_count > 0 or c.last_state for c in containers):
        return "Running"  # restarting (e.g. CrashLoopBackOff)
    return "Pending"


def pod_status(pod: dict, *, init: list[ContainerRecord], containers: list[ContainerRecord], sandbox_ready: bool,
               pod_ip: str | None, host_ip: str, start_time: str | None, qos: str, restart_policy: str,
               init_failed: bool = False, runtime_scheme: str = "process", message: str | None = None,
               reason: str | None = None, previous_status: dict | None = None) -> dict[str, Any]:
    previous = {c["type"]: c for c in ((previous_status if previous_status is not None else pod.get("status") or {}).get("conditions") or [])}
    initialized = all(c.done for c in init) and not init_failed
    unready = [c.name for c in containers if not c.ready]
    phase = phase_of(init, containers, restart_policy, init_failed=init_failed)
    ready = not unready and phase == "Running"
    if phase == "Succeeded":
        ready_reason = "PodCompleted"
    else:
        ready_reason = "ContainersNotReady"
    not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
    incomplete = [c.name for c in init if not c.done]
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready, previous),
        _condition("Initialized", initialized, previous, "PodCompleted" if phase in ("Succeeded",) else "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(incomplete)}]"),
        _condition("Ready", ready, previous, ready_reason, not_ready_msg if ready_reason == "ContainersNotReady" else ""),
        _condition("ContainersReady", ready, previous, ready_reason, not_ready_msg if ready_reason == "ContainersNotReady" else ""),
        _condition("PodScheduled", True, previous),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "containerStatuses": [c.to_status(runtime_scheme) for c in containers],
        "qosClass": qos,
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if start_time:
        status["startTime"] = start_time
    if init:
        status["initContainerStatuses"] = [c.to_status(runtime_scheme) for c in init]
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    return status


def same_status(a: dict | None, b: dict) -> bool:
    """Whether writing ``b`` over ``a`` would change anything the API stores."""
    if not a:
        return False
    for k, v in b.items():
        if a.get(k) != v:
            return False
    return True
