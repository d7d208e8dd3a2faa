"""The ``/scale`` subresource: an ``autoscaling/v1`` Scale view of a workload's replicas.

``kubectl scale`` and HPAs read and write replica counts through it for Deployments, ReplicaSets
and StatefulSets. GET answers the view; PUT and PATCH (merge, JSON, strategic: the official client
sends dict bodies as strategic merge patches) change ``spec.replicas`` of the parent object only,
honouring a ``resourceVersion`` precondition carried by the Scale.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from clusterctl.api import errors
from clusterctl.api.context import ApiContext
from clusterctl.api.errors import FieldError
from clusterctl.api.rest import (Target, _expected_revision, apply_patch, check_patched, decode_object, get_item,
                                 is_dry_run, json_response, parse_patch, prepare_update, update_with)
from clusterctl.api.selectors import selector_object_to_string


def scale_view(t: Target, obj: dict, revision: int) -> dict:
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    try:
        selector = selector_object_to_string(spec.get("selector"))
    except (ValueError, AttributeError, TypeError):
        selector = ""
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                     "resourceVersion": str(revision), "creationTimestamp": meta.get("creationTimestamp")},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector},
    }


def _replicas(t: Target, scale: dict) -> int:
    replicas: Any = (scale.get("spec") or {}).get("replicas", 0)
    if replicas is None:
        replicas = 0
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid("Scale", t.name or "", "autoscaling", [FieldError.invalid(
            "spec.replicas", replicas, "must be greater than or equal to 0")])
    return replicas


async def _set_replicas(ctx: ApiContext, t: Target, request: web.Request, replicas_of, expected: int | None) -> web.Response:
    dry_run = is_dry_run(request.query)

    def mutate(old: dict, item) -> dict:
        replicas = replicas_of(scale_view(t, old, item.mod_revision))
        new = dict(old)
        new["spec"] = dict(old.get("spec") or {})
        new["spec"]["replicas"] = replicas
        new["metadata"] = dict(old.get("metadata") or {})
        return prepare_update(ctx, t.info, old, new)

    out = await update_with(ctx, t, mutate, expected=expected, dry_run=dry_run)
    revision = int(out.obj["metadata"]["resourceVersion"])
    return json_response(scale_view(t, out.obj, revision))


async def handle_scale(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.Response:
    if request.method == "GET":
        item = await get_item(ctx, t)
        return json_response(scale_view(t, ctx.load(item), item.mod_revision))
    if request.method == "PUT":
        body, _ = decode_object(raw, request.headers.get("Content-Type"), request.query, group="autoscaling", version="v1", kind="Scale")
        name = (body.get("metadata") or {}).get("name")
        if name and name != t.name:
            raise errors.bad_request(f"the name of the object ({name}) does not match the name on the URL ({t.name})")
        replicas = _replicas(t, body)
        return await _set_replicas(ctx, t, request, lambda _view: replicas, _expected_revision(body))
    if request.method == "PATCH":
        mt, doc = parse_patch(raw, request.headers.get("Content-Type"))

        def replicas_of(view: dict) -> int:
            patched = apply_patch(t.info, "autoscaling", "v1", "Scale", view, mt, doc)
            check_patched(patched, request.query, group="autoscaling", version="v1", kind="Scale")
            rv = _expected_revision(patched)
            if rv is not None and str(rv) != view["metadata"]["resourceVersion"]:
                raise errors.conflict(t.info.plural, t.name or "", t.info.group)
            return _replicas(t, patched)
        return await _set_replicas(ctx, t, request, replicas_of, None)
    raise errors.method_not_allowed(request.method, f"{t.info.plural}/scale")
