"""Pod subresources that act: ``binding`` (the scheduler's decision) and ``eviction`` (drain).

Binding sets ``spec.nodeName`` exactly once (a second binding is a 409, as in Kubernetes) and
marks the ``PodScheduled`` condition. Eviction is a delete that honours PodDisruptionBudgets:
for each budget whose selector matches the pod, the healthy (Ready, not terminating) pods it
covers must stay at or above what ``minAvailable``/``maxUnavailable`` asks, else the answer is
429 TooManyRequests with Kubernetes' message and a ``DisruptionBudget`` cause. Evictions in one
namespace are serialized so two concurrent drains cannot both take the last allowed disruption.
A pod that is not Ready itself may always be evicted (it is not counted as available anyway).
"""

from __future__ import annotations

import math

from aiohttp import web

from clusterctl.api import errors
from clusterctl.api.context import ApiContext
from clusterctl.api.lifecycle import delete_object
from clusterctl.api.rest import (Target, check_preconditions, decode_object, deep_copy, get_item, json_response,
                                 update_with)
from clusterctl.api.selectors import from_label_selector_object
from clusterctl.store.base import RevisionConflict


def _success(details: dict, code: int = 201) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code, "details": details}


async def handle_binding(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.Response:
    body, _ = decode_object(raw, request.headers.get("Content-Type"), request.query, group="", version="v1", kind="Binding")
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.invalid("Binding", t.name or "", "", [errors.FieldError.required("target.name")])
    if target.get("kind") not in (None, "", "Node"):
        raise errors.invalid("Binding", t.name or "", "", [errors.FieldError.not_supported("target.kind", target.get("kind"), ["Node"])])

    def mutate(old: dict, item) -> dict:
        spec = old.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict("pods/binding", t.name or "", "",
                                  why=f'pod {t.name} is already assigned to node "{spec["nodeName"]}"')
        if (old.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.conflict("pods/binding", t.name or "", "", why=f"pod {t.name} is being deleted, cannot be assigned to a host")
        spec["nodeName"] = node
        status = old.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": ctx.now()})
        status["conditions"] = conds
        return old

    await update_with(ctx, t, mutate)
    return json_response(_success({"name": t.name, "kind": "pods"}), 201)


def _ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _int_or_percent(value, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1] or 0)
        return math.ceil(total * pct / 100) if round_up else math.floor(total * pct / 100)
    return int(value)


async def _check_budgets(ctx: ApiContext, namespace: str, pod: dict) -> None:
    pdb_info = ctx.registry.by_kind("policy", "PodDisruptionBudget")
    pod_info = ctx.registry.by_kind("", "Pod")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    budgets = []
    for item in (await ctx.store.list(pdb_info.prefix(namespace))).items:
        pdb = ctx.load(item)
        selector = (pdb.get("spec") or {}).get("selector")
        try:
            sel = from_label_selector_object(selector)
        except (ValueError, AttributeError, TypeError):
            continue
        if selector is not None and not sel.empty and sel.matches(labels):
            budgets.append((pdb, sel))
    if not budgets:
        return
    if len(budgets) > 1:
        raise errors.too_many_requests("This pod has more than one PodDisruptionBudget, which the eviction "
                                       "subresource does not support.")
    if not _ready(pod):
        return
    pdb, sel = budgets[0]
    pods = [ctx.load(i) for i in (await ctx.store.list(pod_info.prefix(namespace))).items]
    covered = [p for p in pods if sel.matches((p.get("metadata") or {}).get("labels"))
               and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    expected = len(covered)
    healthy = sum(1 for p in covered if _ready(p))
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        desired = expected - _int_or_percent(spec["maxUnavailable"], expected, round_up=True)
    elif spec.get("minAvailable") is not None:
        desired = _int_or_percent(spec["minAvailable"], expected, round_up=True)
    else:
        desired = expected
    if healthy - 1 < desired:
        name = (pdb.get("metadata") or {}).get("name", "")
        raise errors.too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            causes=[{"reason": "DisruptionBudget",
                     "message": f"The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"}])


async def handle_eviction(ctx: ApiContext, t: Target, request: web.Request, raw: bytes, authorize_old=None) -> web.Response:
    body, _ = decode_object(raw, request.headers.get("Content-Type"), request.query, group="policy", version="v1", kind="Eviction")
    name = (body.get("metadata") or {}).get("name")
    if name and name != t.name:
        raise errors.bad_request(f"name in URL does not match name in Eviction object ({t.name} != {name})")
    opts = body.get("deleteOptions") or {}
    if not isinstance(opts, dict):
        raise errors.bad_request("deleteOptions must be an object")
    async with ctx.lock(f"eviction/{t.namespace}"):
        item = await get_item(ctx, t)
        while True:  # a lost compare-and-set is retried against the write that won (rest.update_with)
            pod = ctx.load(item)
            if authorize_old is not None:
                authorize_old(pod)
            check_preconditions(t.info, t, item, pod, opts)
            if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                await _check_budgets(ctx, t.namespace or "", pod)
            try:
                await delete_object(ctx, t.info, item, deep_copy(opts))
            except RevisionConflict as exc:
                item = exc.current
                continue
            return json_response(_success({"name": t.name, "kind": "pods"}), 201)
