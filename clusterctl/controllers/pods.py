"""What controllers need to know about pods and owners, as pure functions over plain dicts.

Kubernetes' ``controller_utils`` in one place: whether a pod is active / ready / available
(``minReadySeconds`` measured from the Ready condition's ``lastTransitionTime``), the order in
which a controller prefers to delete pods (unscheduled < pending < not ready < ready for less
time < more restarts < newer), controller ownerReferences, label-selector matching, a pod built
from a template, and RFC 3339 time both ways. Controllers share these so that a ReplicaSet, a
Deployment and an Endpoints controller agree on what "available" means.
"""

from __future__ import annotations

import calendar
import copy
import random
import time
from datetime import datetime
from typing import Any

from clusterctl.api.selectors import LabelSelector, from_label_selector_object
from clusterctl.client.rest import Obj

#: Kubernetes' ``rand.String`` alphabet (no vowels, no confusable digits).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def parse_time(value: str | None) -> float | None:
    """RFC 3339 (with or without fraction) → unix seconds; None for missing/garbled values."""
    if not value:
        return None
    try:
        text = value.replace("Z", "+00:00")
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        try:
            return float(calendar.timegm(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")))
        except ValueError:
            return None


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def random_suffix(n: int = 5, rng: random.Random | None = None) -> str:
    r = rng or random
    return "".join(r.choice(NAME_ALPHABET) for _ in range(n))


def selector_of(selector: dict[str, Any] | None) -> LabelSelector | None:
    """A workload's ``spec.selector``; None (matches nothing) when it is missing or invalid."""
    if not selector:
        return None
    try:
        return from_label_selector_object(selector)
    except ValueError:
        return None


def matches(selector: LabelSelector | None, obj: Obj) -> bool:
    return selector is not None and selector.matches(meta(obj).get("labels") or {})


# ------------------------------------------------------------------ owners

def controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def controller_key(obj: Obj, kind: str) -> str | None:
    """The work-queue key (``namespace/name``) of ``obj``'s controller when it is a ``kind``."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    return f"{meta(obj).get('namespace')}/{ref.get('name')}"


def owner_reference(owner: Obj, *, block: bool = True) -> dict[str, Any]:
    m = meta(owner)
    return {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"), "name": m.get("name"), "uid": m.get("uid"),
            "controller": True, "blockOwnerDeletion": block}


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == meta(owner).get("uid")


# ------------------------------------------------------------------ pod state

def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not finished, not on its way out."""
    return not is_terminal(pod) and not is_terminating(pod)


def condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> float | None:
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime")) or 0.0


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes' ``IsPodAvailable``)."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds <= 0 or since + min_ready_seconds <= now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """For a ready-but-not-yet-available pod, how long until it counts as available."""
    since = ready_since(pod)
    if since is None or min_ready_seconds <= 0:
        return None
    left = since + min_ready_seconds - now
    return left if left > 0 else None


def restarts(pod: Obj) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or [])


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Obj) -> tuple:
    """Sort key: pods a controller should delete first come first (Kubernetes' ``ActivePods``)."""
    spec, status, m = pod.get("spec") or {}, pod.get("status") or {}, meta(pod)
    ready = is_ready(pod)
    since = ready_since(pod) or 0.0
    created = parse_time(m.get("creationTimestamp")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,               # unscheduled first
        _PHASE_RANK.get(status.get("phase") or "Pending", 0),  # pending < unknown < running
        1 if ready else 0,                              # not ready first
        -since if ready else 0.0,                       # ready for less time first
        -restarts(pod),                                 # more restarts first
        -created,                                       # newer first
    )


def pod_from_template(template: Obj, *, name: str, namespace: str, owner: Obj, extra_labels: dict[str, str] | None = None) -> Obj:
    """A Pod for ``owner`` from its ``spec.template`` (the template is copied, never shared)."""
    tmeta = copy.deepcopy(template.get("metadata") or {})
    labels = dict(tmeta.get("labels") or {})
    labels.update(extra_labels or {})
    pod_meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner_reference(owner)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": copy.deepcopy(template.get("spec") or {})}


def set_condition(conditions: list[dict[str, Any]], new: dict[str, Any], now: str) -> list[dict[str, Any]]:
    """Replace the condition of ``new['type']``; keep ``lastTransitionTime`` when the status did not change."""
    out = []
    placed = False
    for cond in conditions:
        if cond.get("type") == new["type"]:
            merged = dict(new)
            if cond.get("status") == new.get("status"):
                merged["lastTransitionTime"] = cond.get("lastTransitionTime") or now
            else:
                merged.setdefault("lastTransitionTime", now)
            out.append(merged)
            placed = True
        else:
            out.append(cond)
    if not placed:
        out.append(dict(new, lastTransitionTime=new.get("lastTransitionTime") or now))
    return out


def tolerates(tolerations: list[dict[str, Any]] | None, taint: dict[str, Any]) -> dict[str, Any] | None:
    """The toleration that tolerates ``taint`` (Kubernetes' ``ToleratesTaint``), or None."""
    for tol in tolerations or []:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        key = tol.get("key") or ""
        if op == "Exists":
            if key and key != taint.get("key"):
                continue
            return tol
        if key != taint.get("key") or (tol.get("value") or "") != (taint.get("value") or ""):
            continue
        return tol
    return None
