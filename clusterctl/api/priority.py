"""Priority admission: a new Pod's ``spec.priority`` comes from its PriorityClass, as in Kubernetes.

Kubernetes' ``Priority`` admission plugin resolves ``spec.priorityClassName`` when a Pod is created
and writes the class's ``value`` into ``spec.priority`` (and its ``preemptionPolicy`` into
``spec.preemptionPolicy``), so every reader — scheduler, preemption, eviction, kubectl — sees the
number without looking the class up again. The rules, on create only:

- a named class that does not exist → 403 Forbidden ``no PriorityClass with name X was found``;
- no name → the ``globalDefault`` class (the lowest value if several claim it; its name is filled
  in), else priority 0;
- the two built-in classes ``system-cluster-critical`` and ``system-node-critical`` resolve even
  when nobody stored them (Kubernetes creates them at start);
- a Pod may not bring its own ``spec.priority`` (or ``spec.preemptionPolicy``) differing from what
  the class gives: 403 Forbidden naming both values.

Updates that omit these admitted fields keep the stored values (``keep_admitted_priority``).
"""

from __future__ import annotations

from typing import Any

from clusterctl.api import errors
from clusterctl.api.context import ApiContext

DEFAULT_PREEMPTION = "PreemptLowerPriority"

#: Kubernetes' built-in classes (pkg/apis/scheduling: SystemCriticalPriority + 1000 for node-critical)
SYSTEM_CLASSES: dict[str, dict[str, Any]] = {
    "system-cluster-critical": {"value": 2_000_000_000, "preemptionPolicy": DEFAULT_PREEMPTION},
    "system-node-critical": {"value": 2_000_001_000, "preemptionPolicy": DEFAULT_PREEMPTION},
}


async def _class_named(ctx: ApiContext, name: str) -> dict | None:
    info = ctx.registry.by_kind("scheduling.k8s.io", "PriorityClass")
    item = await ctx.store.get(info.key(None, name))
    if item is not None:
        return ctx.load(item)
    return SYSTEM_CLASSES.get(name)


async def _global_default(ctx: ApiContext) -> tuple[str, dict] | None:
    info = ctx.registry.by_kind("scheduling.k8s.io", "PriorityClass")
    result = await ctx.store.list(info.prefix())
    best: tuple[str, dict] | None = None
    for item in result.items:
        pc = ctx.load(item)
        if pc.get("globalDefault") is True:
            value = pc.get("value") if isinstance(pc.get("value"), int) else 0
            if best is None or value < (best[1].get("value") or 0):
                best = ((pc.get("metadata") or {}).get("name") or "", pc)
    return best


def _forbidden(pod: dict, why: str) -> errors.ApiError:
    name = (pod.get("metadata") or {}).get("name") or (pod.get("metadata") or {}).get("generateName") or ""
    return errors.forbidden_message("pods", name, "", why)


async def admit_pod_priority(ctx: ApiContext, pod: dict) -> None:
    """Fill ``spec.priority``/``spec.preemptionPolicy`` of a Pod being created; ApiError 403 if refused."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return  # validation reports the missing/ill-typed spec
    class_name = spec.get("priorityClassName")
    if class_name is not None and not isinstance(class_name, str):
        return  # ill-typed: validation's concern
    if class_name:
        pc = await _class_named(ctx, class_name)
        if pc is None:
            raise _forbidden(pod, f"no PriorityClass with name {class_name} was found")
    else:
        found = await _global_default(ctx)
        if found is not None:
            class_name, pc = found
            spec["priorityClassName"] = class_name
        else:
            pc = None
    value = pc.get("value") if pc is not None and isinstance(pc.get("value"), int) else 0
    policy = (pc.get("preemptionPolicy") if pc is not None else None) or DEFAULT_PREEMPTION
    given = spec.get("priority")
    if given is not None and given != value:
        raise _forbidden(pod, f"the integer value of priority ({given}) must not be provided in pod spec; "
                              f"priority admission controller computed {value} from the given PriorityClass name")
    given_policy = spec.get("preemptionPolicy")
    if given_policy is not None and given_policy != policy:
        raise _forbidden(pod, f"the string value of PreemptionPolicy ({given_policy}) must not be provided in pod spec; "
                              f"priority admission controller computed {policy} from the given PriorityClass name")
    spec["priority"] = value
    spec["preemptionPolicy"] = policy


def keep_admitted_priority(old: dict, new: dict) -> None:
    """An update that omits what admission filled in (``priorityClassName`` of the global default,
    ``priority``, ``preemptionPolicy``) keeps the stored values, as for Service allocations:
    clients that PUT back the body they created are not refused for "changing" the spec."""
    ospec, nspec = old.get("spec"), new.get("spec")
    if not isinstance(ospec, dict) or not isinstance(nspec, dict):
        return
    for f in ("priorityClassName", "priority", "preemptionPolicy"):
        if f not in nspec and f in ospec:
            nspec[f] = ospec[f]
