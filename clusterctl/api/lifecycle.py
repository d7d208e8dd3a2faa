"""Deletion as Kubernetes does it: finalizers, graceful pods, propagation, namespace termination.

- An object with ``metadata.finalizers`` is not removed by DELETE: it gets ``deletionTimestamp``
  (and ``deletionGracePeriodSeconds: 0``); the update that removes its last finalizer removes it
  (``rest.commit_update`` calls ``remove_now``).
- A pod bound to a node is deleted gracefully: DELETE sets ``deletionTimestamp`` = now + grace
  and ``deletionGracePeriodSeconds``; the node agent stops its containers and deletes it again
  with ``gracePeriodSeconds=0``. If no agent does within grace + ``timings.pod_deletion_margin``,
  the server removes it (Kubernetes leaves that to the pod GC controller). Unbound or terminal
  pods go at once.
- Propagation through ``ownerReferences``: ``Orphan`` strips the owner's references from its
  dependents first; ``Foreground`` adds the ``foregroundDeletion`` finalizer, deletes the
  dependents, waits for them, then removes the owner; ``Background`` (the default) removes the
  owner, then a built-in collector deletes dependents whose every owner is gone. The collector
  only looks at kinds that are owned in practice (``DEPENDENT_KINDS``) after the deletion of a
  kind that owns in practice (``OWNER_KINDS``), so deleting pods costs no scan.
- Deleting a Namespace marks it ``Terminating``, deletes everything in it, then removes it.
"""

from __future__ import annotations

import asyncio
import logging
from clusterctl.api import errors
from clusterctl.api.context import ApiContext, parse_rfc3339, rfc3339
from clusterctl.api.kinds import KindInfo
from clusterctl.api.rest import Outcome, deep_copy
from clusterctl.store.base import Item, KeyNotFound, RevisionConflict

log = logging.getLogger("clusterctl.api.lifecycle")

OWNER_KINDS = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
               ("batch", "Job"), ("batch", "CronJob"), ("", "Service"), ("", "Node")}
DEPENDENT_KINDS = (("apps", "ReplicaSet"), ("", "Pod"), ("batch", "Job"), ("discovery.k8s.io", "EndpointSlice"),
                   ("", "Endpoints"), ("coordination.k8s.io", "Lease"), ("", "Event"))
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


async def remove_now(ctx: ApiContext, info: KindInfo, item: Item) -> Item:
    """Remove the stored object for good and let the collector find its dependents."""
    try:
        deleted = await ctx.store.delete(item.key, expected_revision=item.mod_revision)
    except KeyNotFound:
        raise errors.not_found(info.plural, _meta(item.value).get("name", ""), info.group) from None
    ctx.forget(item.key)
    if info.kind == "Service" and not info.group:   # its clusterIP/nodePort reservations go with it
        from clusterctl.api.allocation import release_service
        await release_service(ctx, ctx.load(item))
    uid = _meta(ctx.load(item)).get("uid")
    if uid and (info.group, info.kind) in OWNER_KINDS:
        ctx.spawn(collect_dependents(ctx, uid, _meta(ctx.load(item)).get("namespace")), f"gc {item.key}")
    return deleted


async def _write(ctx: ApiContext, info: KindInfo, item: Item, new: dict) -> Item:
    return await ctx.store.update(item.key, ctx.seal(info, item.key, new), expected_revision=item.mod_revision)


async def delete_object(ctx: ApiContext, info: KindInfo, item: Item, opts: dict) -> Outcome:
    """DELETE one object per ``opts`` (DeleteOptions). Raises RevisionConflict for the caller to retry."""
    obj = ctx.load(item)
    meta = _meta(obj)
    dry_run = bool(opts.get("dryRun"))
    policy = opts.get("propagationPolicy") or "Background"
    if info.kind == "Namespace" and not info.group:
        return await _delete_namespace(ctx, info, item, obj, dry_run)
    if dry_run:
        return Outcome(ctx.with_rv(obj, item.mod_revision), 200)
    if policy == "Orphan":
        await orphan_dependents(ctx, meta.get("uid"), meta.get("namespace"))
    finalizers = list(meta.get("finalizers") or [])
    if policy == "Foreground" and FOREGROUND not in finalizers:
        finalizers.append(FOREGROUND)
    if finalizers:
        if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
            return Outcome(ctx.with_rv(obj, item.mod_revision), 200)
        new = deep_copy(obj)
        nm = new["metadata"]
        nm.setdefault("deletionTimestamp", ctx.now())
        nm["deletionGracePeriodSeconds"] = 0
        nm["finalizers"] = finalizers
        stored = await _write(ctx, info, item, new)
        if FOREGROUND in finalizers:
            ctx.spawn(_foreground(ctx, info, item.key, nm.get("uid"), nm.get("namespace")), f"foreground {item.key}")
        return Outcome(ctx.with_rv(new, stored.mod_revision), 200)
    if info.kind == "Pod" and not info.group:
        grace = _pod_grace(obj, opts)
        if grace > 0:
            if meta.get("deletionTimestamp"):
                return Outcome(ctx.with_rv(obj, item.mod_revision), 200)
            new = deep_copy(obj)
            new["metadata"]["deletionTimestamp"] = rfc3339(ctx.clock() + grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            stored = await _write(ctx, info, item, new)
            schedule_pod_removal(ctx, info, item.key, new["metadata"].get("uid"), grace + ctx.timings.pod_deletion_margin)
            return Outcome(ctx.with_rv(new, stored.mod_revision), 200)
    deleted = await remove_now(ctx, info, item)
    return Outcome(ctx.with_rv(obj, deleted.mod_revision), 200)


def _pod_grace(pod: dict, opts: dict) -> int:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = opts.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    try:
        return max(0, int(grace))
    except (TypeError, ValueError):
        return 30


def schedule_pod_removal(ctx: ApiContext, info: KindInfo, key: str, uid: str | None, delay: float) -> None:
    async def later() -> None:
        await asyncio.sleep(max(0.0, delay))
        item = await ctx.store.get(key)
        if item is None or _meta(ctx.load(item)).get("uid") != uid:
            return
        try:
            await remove_now(ctx, info, item)
        except (errors.ApiError, RevisionConflict, KeyNotFound):
            pass  # someone else finished or changed it: the agent's own delete wins
    ctx.spawn(later(), f"pod-removal {key}")


async def resume_pending_deletions(ctx: ApiContext) -> None:
    """After a restart: re-arm the removal of gracefully deleted pods."""
    info = ctx.registry.by_kind("", "Pod")
    result = await ctx.store.list(info.prefix())
    for item in result.items:
        meta = _meta(item.value)
        ts = meta.get("deletionTimestamp")
        if ts and meta.get("deletionGracePeriodSeconds") and not meta.get("finalizers"):
            try:
                delay = parse_rfc3339(ts) - ctx.clock() + ctx.timings.pod_deletion_margin
            except ValueError:
                delay = 0
            schedule_pod_removal(ctx, info, item.key, meta.get("uid"), delay)


# --- ownerReferences ---------------------------------------------------------------------------

def _dependent_kinds(ctx: ApiContext) -> list[KindInfo]:
    return [k for k in (ctx.registry.by_kind(g, kind) for g, kind in DEPENDENT_KINDS) if k is not None]


async def _dependents(ctx: ApiContext, uid: str, namespace: str | None) -> list[tuple[KindInfo, Item]]:
    out = []
    for info in _dependent_kinds(ctx):
        result = await ctx.store.list(info.prefix(namespace if info.namespaced else None))
        for item in result.items:
            refs = _meta(ctx.load(item)).get("ownerReferences") or []
            if any(isinstance(r, dict) and r.get("uid") == uid for r in refs):
                out.append((info, item))
    return out


async def _edit_refs(ctx: ApiContext, info: KindInfo, item: Item, uid: str) -> tuple[Item, list] | None:
    for _ in range(8):
        obj = deep_copy(ctx.load(item))
        refs = [r for r in (obj["metadata"].get("ownerReferences") or []) if not (isinstance(r, dict) and r.get("uid") == uid)]
        if refs:
            obj["metadata"]["ownerReferences"] = refs
        else:
            obj["metadata"].pop("ownerReferences", None)
        try:
            return await _write(ctx, info, item, obj), refs
        except RevisionConflict as exc:
            item = exc.current
        except KeyNotFound:
            return None
    return None


async def orphan_dependents(ctx: ApiContext, uid: str | None, namespace: str | None) -> None:
    if not uid:
        return
    for info, item in await _dependents(ctx, uid, namespace):
        await _edit_refs(ctx, info, item, uid)


async def _owner_exists(ctx: ApiContext, ref: dict, namespace: str | None) -> bool:
    api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
    info = ctx.registry.by_api_version(api_version, kind)
    if info is None:
        return False
    item = await ctx.store.get(info.key(namespace if info.namespaced else None, ref.get("name", "")))
    return item is not None and _meta(ctx.load(item)).get("uid") == ref.get("uid")


async def collect_dependents(ctx: ApiContext, uid: str, namespace: str | None) -> None:
    """Background propagation: delete dependents whose every owner is gone."""
    for info, item in await _dependents(ctx, uid, namespace):
        refs = _meta(ctx.load(item)).get("ownerReferences") or []
        others = [r for r in refs if isinstance(r, dict) and r.get("uid") != uid]
        alive = [r for r in others if await _owner_exists(ctx, r, _meta(ctx.load(item)).get("namespace"))]
        try:
            if alive:
                await _edit_refs(ctx, info, item, uid)
            else:
                await delete_object(ctx, info, item, {"propagationPolicy": "Background"})
        except (errors.ApiError, RevisionConflict, KeyNotFound) as exc:
            log.debug("gc of %s skipped: %s", item.key, exc)


async def _foreground(ctx: ApiContext, info: KindInfo, key: str, uid: str | None, namespace: str | None) -> None:
    if uid:
        for dep_info, dep in await _dependents(ctx, uid, namespace):
            try:
                await delete_object(ctx, dep_info, dep, {"propagationPolicy": "Foreground"})
            except (errors.ApiError, RevisionConflict, KeyNotFound):
                pass
        while await _dependents(ctx, uid, namespace):
            await asyncio.sleep(ctx.timings.namespace_cleanup_poll)
    for _ in range(8):
        item = await ctx.store.get(key)
        if item is None or _meta(ctx.load(item)).get("uid") != uid:
            return
        obj = deep_copy(ctx.load(item))
        fins = [f for f in obj["metadata"].get("finalizers") or [] if f != FOREGROUND]
        try:
            if fins:
                obj["metadata"]["finalizers"] = fins
                await _write(ctx, info, item, obj)
            else:
                await remove_now(ctx, info, item)
            return
        except RevisionConflict:
            continue


# --- namespaces --------------------------------------------------------------------------------

async def _delete_namespace(ctx: ApiContext, info: KindInfo, item: Item, obj: dict, dry_run: bool) -> Outcome:
    meta = _meta(obj)
    if dry_run or meta.get("deletionTimestamp"):
        return Outcome(ctx.with_rv(obj, item.mod_revision), 200)
    new = deep_copy(obj)
    new["metadata"]["deletionTimestamp"] = ctx.now()
    new["metadata"]["deletionGracePeriodSeconds"] = 0
    new.setdefault("status", {})["phase"] = "Terminating"
    stored = await _write(ctx, info, item, new)
    ctx.spawn(terminate_namespace(ctx, meta.get("name", "")), f"namespace-termination {meta.get('name')}")
    return Outcome(ctx.with_rv(new, stored.mod_revision), 200)


async def terminate_namespace(ctx: ApiContext, name: str) -> None:
    """Delete everything in namespace ``name``, wait for it to be gone, then remove the namespace."""
    kinds = [k for k in ctx.registry if k.namespaced]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timings.namespace_cleanup_timeout
    while True:
        left = 0
        for info in kinds:
            result = await ctx.store.list(info.prefix(name))
            for item in result.items:
                left += 1
                force = loop.time() >= deadline
                try:
                    if force:
                        await remove_now(ctx, info, item)
                    elif not _meta(ctx.load(item)).get("deletionTimestamp"):
                        await delete_object(ctx, info, item, {"gracePeriodSeconds": 0, "propagationPolicy": "Background"})
                    elif info.kind == "Pod" and not _meta(ctx.load(item)).get("finalizers"):
                        await remove_now(ctx, info, item)
                except (errors.ApiError, RevisionConflict, KeyNotFound):
                    pass
        if not left:
            break
        await asyncio.sleep(ctx.timings.namespace_cleanup_poll)
    ns_info = ctx.registry.by_kind("", "Namespace")
    item = await ctx.store.get(ns_info.key(None, name))
    if item is not None:
        try:
            await ctx.store.delete(item.key, expected_revision=item.mod_revision)
            ctx.forget(item.key)
        except (KeyNotFound, RevisionConflict):
            pass


async def resume_namespace_terminations(ctx: ApiContext) -> None:
    ns_info = ctx.registry.by_kind("", "Namespace")
    result = await ctx.store.list(ns_info.prefix())
    for item in result.items:
        meta = _meta(item.value)
        if meta.get("deletionTimestamp"):
            ctx.spawn(terminate_namespace(ctx, meta.get("name", "")), f"namespace-termination {meta.get('name')}")

