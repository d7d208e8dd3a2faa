"""Older API versions served by converting to and from the stored version.

Kubernetes serves some kinds in several versions and stores one. We do the same for the few
versions clients still send: a ``KindInfo`` with ``extra["storage"]`` (the stored kind's
``(group, kind)``) and ``extra["to_storage"]``/``extra["from_storage"]`` functions is served by
this adapter: bodies are converted to the stored version and go through the normal REST path;
answers are converted back. Watching a converted version is not supported (405); kubectl and
the clients we know only create/read/update through these versions.

Today: ``autoscaling/v1`` HorizontalPodAutoscaler (``kubectl autoscale`` in 1.32 creates v1
HPAs), stored as ``autoscaling/v2``: ``targetCPUUtilizationPercentage`` is the v2 CPU
``Utilization`` metric, and the current CPU utilization in status likewise.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from clusterctl.api import errors, rest
from clusterctl.api.context import ApiContext
from clusterctl.api.kinds import KindInfo
from clusterctl.api.rest import Target


# --- autoscaling/v1 <-> v2 HorizontalPodAutoscaler ---------------------------------------------

def hpa_v1_to_v2(obj: dict) -> dict:
    out = {k: v for k, v in obj.items() if k not in ("spec", "status")}
    out["apiVersion"], out["kind"] = "autoscaling/v2", "HorizontalPodAutoscaler"
    spec = dict(obj.get("spec") or {})
    cpu = spec.pop("targetCPUUtilizationPercentage", None)
    if cpu is not None:
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": cpu}}}]
    out["spec"] = spec
    if "status" in obj:
        status = dict(obj.get("status") or {})
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": current}}}]
        out["status"] = status
    return out


def hpa_v2_to_v1(obj: dict) -> dict:
    out = {k: v for k, v in obj.items() if k not in ("spec", "status")}
    out["apiVersion"], out["kind"] = "autoscaling/v1", "HorizontalPodAutoscaler"
    spec = {k: v for k, v in (obj.get("spec") or {}).items() if k not in ("metrics", "behavior")}
    for m in (obj.get("spec") or {}).get("metrics") or []:
        res = (m or {}).get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            util = (res.get("target") or {}).get("averageUtilization")
            if util is not None:
                spec["targetCPUUtilizationPercentage"] = util
    out["spec"] = spec
    status = {k: v for k, v in (obj.get("status") or {}).items() if k not in ("currentMetrics", "conditions")}
    for m in (obj.get("status") or {}).get("currentMetrics") or []:
        res = (m or {}).get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            util = (res.get("current") or {}).get("averageUtilization")
            if util is not None:
                status["currentCPUUtilizationPercentage"] = util
    out["status"] = status
    return out


# --- the adapter -------------------------------------------------------------------------------

def _storage(ctx: ApiContext, info: KindInfo) -> KindInfo:
    group, kind = info.extra["storage"]
    return ctx.registry.by_kind(group, kind)


def _out(info: KindInfo, obj: dict) -> dict:
    return info.extra["from_storage"](obj)


async def handle(ctx: ApiContext, t: Target, request: web.Request, verb: str, raw: bytes) -> web.Response:
    info = t.info
    storage = _storage(ctx, info)
    st = Target(storage, t.namespace, t.name, t.subresource)
    params = request.query
    if verb == "get":
        item = await rest.get_item(ctx, st)
        return rest.json_response(_out(info, ctx.obj(item)))
    if verb == "list":
        items, revision, token = await rest.list_items(ctx, st, params)
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if token:
            meta["continue"] = token
        return rest.json_response({"kind": info.list_kind, "apiVersion": info.api_version, "metadata": meta,
                                   "items": [_out(info, ctx.obj(i)) for i in items]})
    if verb == "create":
        obj, warnings = rest.decode_object(raw, request.headers.get("Content-Type"), params, group=info.group,
                                           version=info.version, kind=info.kind)
        out = await rest.create_object(ctx, st, info.extra["to_storage"](obj), dry_run=rest.is_dry_run(params),
                                       warnings=warnings)
        return rest.json_response(_out(info, out.obj), out.status, warnings=out.warnings)
    if verb in ("update", "patch"):
        if verb == "update":
            body, _ = rest.decode_object(raw, request.headers.get("Content-Type"), params, group=info.group,
                                         version=info.version, kind=info.kind)
        else:
            mt, doc = rest.parse_patch(raw, request.headers.get("Content-Type"))

        def mutate(old: dict, item) -> dict:
            current = _out(info, ctx.with_rv(old, item.mod_revision))
            new = body if verb == "update" else rest.apply_patch(info, info.group, info.version, info.kind,
                                                                current, mt, doc)
            rv = rest._expected_revision(new)
            if rv is not None and rv != item.mod_revision:
                raise errors.conflict(storage.plural, t.name or "", storage.group)
            converted = info.extra["to_storage"](rest.deep_copy(new))
            if t.subresource == "status":
                return rest.status_only(old, converted.get("status"))
            return rest.prepare_update(ctx, storage, old, converted)
        out = await rest.update_with(ctx, st, mutate, dry_run=rest.is_dry_run(params))
        return rest.json_response(_out(info, out.obj))
    if verb == "delete":
        from clusterctl.api.lifecycle import delete_object
        opts = rest.delete_options(raw, params)
        item = await rest.get_item(ctx, st)
        out = await delete_object(ctx, storage, item, opts)
        return rest.json_response(_out(info, out.obj), out.status)
    raise errors.method_not_allowed(request.method, f"{info.plural} in {info.api_version} (watch and "
                                    f"deletecollection are served in {storage.api_version})")

