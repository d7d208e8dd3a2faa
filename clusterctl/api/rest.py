"""The REST verbs on one kind: GET, LIST, POST, PUT, PATCH, DELETE, DELETECOLLECTION, ``/status``.

This is where Kubernetes' object semantics live: ``metadata.uid``/``creationTimestamp`` on create,
``generateName``, ``resourceVersion`` = the store's ``mod_revision`` with compare-and-set on
update (a stale one is a 409 Conflict), ``generation`` bumped when the spec changes, status
ignored by main-resource writes for kinds with a status subresource (and only status changed by
``/status`` writes), no-op updates that write nothing, ``dryRun=All``, ``fieldValidation``,
label/field selectors and ``limit``/``continue`` paging on LIST, and Table output for kubectl.
Deletion (finalizers, grace, propagation) is in ``clusterctl.api.lifecycle``; watches in
``clusterctl.api.watch``; scale/binding/eviction in ``clusterctl.api.pod_actions`` and
``clusterctl.api.scale``.

Handlers take a ``Target`` (kind, namespace, name, subresource) already authorized by the server
and return an ``aiohttp.web.Response``; failures are ``ApiError``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson
from aiohttp import web

from clusterctl.api import decoding, errors
from clusterctl.api.context import ApiContext
from clusterctl.api.errors import ApiError
from clusterctl.api.kinds import KindInfo
from clusterctl.api.priority import admit_pod_priority, keep_admitted_priority
from clusterctl.api.service_accounts import admit_pod_service_account, keep_admitted_pull_secrets
from clusterctl.api.selectors import LabelSelector, FieldSelector, parse_field_selector, parse_label_selector
from clusterctl.api.validation import DecodeError
from clusterctl.store.base import Compacted, Item, KeyExists, KeyNotFound, RevisionConflict

JSON = "application/json"
TABLE_ACCEPT = "as=Table"
#: lists longer than this are streamed in chunks of this many items
STREAM_LIST_AFTER = 500
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
               "application/apply-patch+yaml", "application/strategic-merge-patch+json"]


@dataclass(frozen=True)
class Target:
    info: KindInfo
    namespace: str | None
    name: str | None = None
    subresource: str | None = None

    @property
    def key(self) -> str:
        return self.info.key(self.namespace, self.name or "")


@dataclass
class Outcome:
    """What a write produced: the object to answer with and warnings for the ``Warning`` header."""

    obj: dict
    status: int = 200
    warnings: list[str] = field(default_factory=list)


# --- responses ---------------------------------------------------------------------------------

def json_response(body: bytes | dict, status: int = 200, *, warnings: list[str] | None = None) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = web.Response(body=data, status=status, content_type=JSON)
    for w in warnings or ():
        resp.headers.add("Warning", f'299 - "{w}"')
    return resp


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return TABLE_ACCEPT in accept and "g=meta.k8s.io" in accept


def wants_partial_metadata(request: web.Request) -> bool:
    return "as=PartialObjectMetadata" in request.headers.get("Accept", "")


def to_table(info: KindInfo, objects: list[dict], params: Mapping[str, str], *, list_meta: dict | None = None,
             no_headers: bool = False, now: float | None = None) -> dict:
    import datetime as dt

    from clusterctl.api import tables
    include = params.get("includeObject") or "Metadata"
    if include not in ("Metadata", "Object", "None"):
        raise errors.bad_request(f'includeObject: Unsupported value: "{include}": supported values: "Metadata", "None", "Object"')
    when = dt.datetime.fromtimestamp(now, dt.timezone.utc) if now is not None else None
    return tables.to_table(info, objects, wide=True, now=when, include_object=include, no_headers=no_headers,
                           list_meta=list_meta)


def partial_metadata(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def object_response(request: web.Request, info: KindInfo, obj: dict, status: int = 200,
                    warnings: list[str] | None = None) -> web.Response:
    if wants_table(request):
        return json_response(to_table(info, [obj], request.query), status, warnings=warnings)
    if wants_partial_metadata(request):
        return json_response(partial_metadata(obj), status, warnings=warnings)
    return json_response(obj, status, warnings=warnings)


# --- parameters --------------------------------------------------------------------------------

def is_dry_run(params: Mapping[str, str], body: dict | None = None) -> bool:
    values = params.getall("dryRun", []) if hasattr(params, "getall") else ([params["dryRun"]] if "dryRun" in params else [])
    if body and isinstance(body.get("dryRun"), list):
        values = list(values) + body["dryRun"]
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value: "{v}" (only "All" is supported)')
    return bool(values)


def field_validation(params: Mapping[str, str]) -> str:
    fv = params.get("fieldValidation", "Warn") or "Warn"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f"fieldValidation parameter unsupported: {fv}")
    return fv


def selectors(info: KindInfo, params: Mapping[str, str]) -> tuple[LabelSelector, FieldSelector]:
    return parse_label_selector(params.get("labelSelector")), parse_field_selector(params.get("fieldSelector"), info.kind)


def matches(obj: dict, labels: LabelSelector, fields: FieldSelector) -> bool:
    if not labels.empty and not labels.matches((obj.get("metadata") or {}).get("labels")):
        return False
    return fields.empty or fields.matches(obj)


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid value for {name}: {raw!r} is not an integer") from exc


# --- decoding a body into an object of the kind ------------------------------------------------

def decode_object(raw: bytes, content_type: str | None, params: Mapping[str, str], *, group: str, version: str,
                  kind: str) -> tuple[dict, list[str]]:
    """Parse, check apiVersion/kind, field-validate (Strict/Warn/Ignore), type-check."""
    fv = field_validation(params)
    # Duplicate keys are looked for only when they would be rejected (Strict, kubectl's default):
    # that parse is ~8x slower than orjson; under Warn/Ignore the last value wins, as in Go.
    body = decoding.parse_body(raw, content_type, detect_duplicates=fv == "Strict")
    obj = body.value
    if not isinstance(obj, dict):
        raise errors.cannot_handle(kind, version, f"json: cannot unmarshal {decoding._json_type(obj)} into Go value of type struct")
    api_version = f"{group}/{version}" if group else version
    got_av, got_kind = obj.get("apiVersion"), obj.get("kind")
    if got_av not in (None, "") and got_av != api_version:
        raise errors.bad_request(f"the API version in the data ({got_av}) does not match the expected API version ({api_version})")
    if got_kind not in (None, "") and got_kind != kind:
        raise errors.bad_request(f"the kind in the data ({got_kind}) does not match the expected kind ({kind})")
    obj["apiVersion"], obj["kind"] = api_version, kind
    report = decoding.check_fields(obj, group=group, version=version, kind=kind)
    if report.type_errors:
        raise errors.cannot_handle(kind, version, report.type_errors[0])
    warnings: list[str] = []
    if report.unknown or report.duplicates:
        if fv == "Strict":
            raise errors.cannot_handle(kind, version, decoding.strict_message(report))
        if fv == "Warn":
            warnings = decoding.warnings_for(report)
    if body.has_duplicates:
        obj = _plain(obj)
    ensure_encodable(obj, kind, version)
    return obj, warnings


def ensure_encodable(obj: Any, kind: str, version: str) -> None:
    """Values JSON allows but the store cannot hold (integers beyond 64 bits, deep nesting) are a 400."""
    try:
        orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.cannot_handle(kind, version, f"the object cannot be encoded: {exc}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def deep_copy(obj: dict) -> dict:
    return orjson.loads(orjson.dumps(obj))


# --- validation glue ---------------------------------------------------------------------------

def default_and_validate(info: KindInfo, obj: dict, old: dict | None) -> None:
    """Run the kind's defaulting and validation; 422 with every bad field, 400 for decode-level errors."""
    try:
        if info.default:
            info.default(obj)
        errs = info.validate(obj, old) if info.validate else []
    except DecodeError as exc:
        raise errors.cannot_handle(info.kind, info.version, str(exc)) from exc
    if errs:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.invalid(info.kind, name, info.group, errs)


def merge_string_data(info: KindInfo, obj: dict) -> None:
    if info.kind != "Secret" or info.group:
        return
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict) and sd:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _pod_qos(obj: dict) -> str:
    containers = ((obj.get("spec") or {}).get("containers") or [])
    any_set, guaranteed = False, True
    for c in containers:
        res = (c or {}).get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _initial_status(info: KindInfo, obj: dict) -> None:
    if info.has_status and not info.keep_status_on_create:
        obj.pop("status", None)
    if info.kind == "Pod" and not info.group:
        obj["status"] = {"phase": "Pending", "qosClass": _pod_qos(obj)}


def spec_of(info: KindInfo, obj: dict) -> tuple:
    return tuple(obj.get(f) for f in info.spec_fields)


# --- namespace admission -----------------------------------------------------------------------

async def check_namespace(ctx: ApiContext, info: KindInfo, namespace: str, name: str) -> None:
    ns_info = ctx.registry.by_kind("", "Namespace")
    item = await ctx.store.get(ns_info.key(None, namespace))
    if item is None:
        raise errors.not_found("namespaces", namespace)
    meta = item.value.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        raise errors.forbidden_message(info.plural, name, info.group,
                                       f"unable to create new content in namespace {namespace} because it is being terminated")


# --- GET / LIST --------------------------------------------------------------------------------

async def get_item(ctx: ApiContext, t: Target) -> Item:
    item = await ctx.store.get(t.key)
    if item is None:
        raise errors.not_found(t.info.plural, t.name or "", t.info.group)
    return item


async def handle_get(ctx: ApiContext, t: Target, request: web.Request) -> web.Response:
    item = await get_item(ctx, t)
    if wants_table(request) or wants_partial_metadata(request):
        return object_response(request, t.info, ctx.obj(item))
    return json_response(ctx.render(item))


def _encode_continue(revision: int, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"rv": revision, "start": key})).decode().rstrip("=")


def _decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        pad = "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(token + pad))
        rv, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise errors.bad_request("continue key is not valid: the token could not be decoded") from exc
    if not start.startswith(prefix):
        raise errors.bad_request("continue key is not valid: it does not belong to this list")
    return rv, start


async def list_items(ctx: ApiContext, t: Target, params: Mapping[str, str]) -> tuple[list[Item], int, str | None]:
    """Matching items, the list's revision, and a continue token when ``limit`` cut it."""
    info = t.info
    labels, fields = selectors(info, params)
    limit = _int_param(params, "limit")
    if limit is not None and limit <= 0:
        limit = None
    prefix = info.prefix(t.namespace)
    ns_exact = fields.exact("metadata.namespace") if info.namespaced and not t.namespace else None
    if ns_exact:
        prefix = info.prefix(ns_exact)
    start_after, revision = None, None
    token = params.get("continue")
    if token:
        revision, start_after = _decode_continue(token, prefix)
    else:
        rv = params.get("resourceVersion")
        if rv and params.get("resourceVersionMatch") == "Exact":
            try:
                revision = int(rv)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resource version: {rv!r}") from exc
    out: list[Item] = []
    filtering = not (labels.empty and fields.empty)
    while True:
        want = None if limit is None else (limit - len(out)) if not filtering else max(limit * 2, 100)
        try:
            result = await ctx.store.list(prefix, start_after=start_after, limit=want, revision=revision)
        except Compacted as exc:
            if token:
                raise errors.gone("The provided continue parameter is too old to display a consistent list result. "
                                  "You can start a new list without the continue parameter, or use the continue "
                                  "token in this response to retrieve the remainder of the results.") from exc
            raise errors.gone(f"too old resource version: {exc.requested} ({exc.compact_revision})") from exc
        revision = result.revision
        for item in result.items:
            if filtering and not matches(ctx.load(item), labels, fields):
                continue
            out.append(item)
            if limit is not None and len(out) >= limit:
                last = item.key
                more_after = result.more or item is not result.items[-1]
                return out, revision, (_encode_continue(revision, last) if more_after else None)
        if not result.more or not result.items:
            return out, revision, None
        start_after = result.items[-1].key


async def handle_list(ctx: ApiContext, t: Target, request: web.Request) -> web.Response:
    params = request.query
    items, revision, token = await list_items(ctx, t, params)
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if token:
        meta["continue"] = token
    if wants_table(request):
        objects = [ctx.obj(i) for i in items]
        return json_response(to_table(t.info, objects, params, list_meta=meta))
    if wants_partial_metadata(request):
        return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                              "items": [partial_metadata(ctx.obj(i)) for i in items]})
    head = orjson.dumps({"kind": t.info.list_kind, "apiVersion": t.info.api_version, "metadata": meta})
    if len(items) <= STREAM_LIST_AFTER:
        body = b"".join((head[:-1], b',"items":[', b",".join(ctx.render_item(i) for i in items), b"]}"))
        return json_response(body)
    # Large lists are streamed in chunks: no multi-megabyte joined copies (peak memory stays flat).
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(head[:-1] + b',"items":[')
    for start in range(0, len(items), STREAM_LIST_AFTER):
        chunk = b",".join(ctx.render_item(i) for i in items[start:start + STREAM_LIST_AFTER])
        await resp.write(chunk if start == 0 else b"," + chunk)
    await resp.write(b"]}")
    await resp.write_eof()
    return resp


# --- CREATE ------------------------------------------------------------------------------------

def new_uid() -> str:
    """A random (version 4) UUID. Uniqueness is what matters here, not unpredictability, so the
    process PRNG (seeded from os.urandom at start) saves a getrandom() syscall per create."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _new_metadata(ctx: ApiContext, info: KindInfo, meta: dict) -> None:
    for f in ("resourceVersion", "selfLink", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(f, None)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = ctx.now()
    if info.spec_fields:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


async def create_object(ctx: ApiContext, t: Target, obj: dict, *, dry_run: bool = False,
                        warnings: list[str] | None = None) -> Outcome:
    """Create ``obj`` (already decoded) in ``t``'s collection; the shared path of POST and internal creates."""
    info = t.info
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if info.namespaced:
        if meta.get("namespace") and meta["namespace"] != t.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = t.namespace
    else:
        meta.pop("namespace", None)
    generate = not meta.get("name") and meta.get("generateName")
    if generate and not isinstance(meta["generateName"], str):
        raise errors.cannot_handle(info.kind, info.version, "metadata.generateName must be a string")
    _new_metadata(ctx, info, meta)
    _initial_status(info, obj)
    merge_string_data(info, obj)
    if info.kind == "Pod" and not info.group:
        # both only read (different fields): together, so an etcd store merges their reads into one request
        await asyncio.gather(admit_pod_priority(ctx, obj), admit_pod_service_account(ctx, obj))
    for attempt in range(8 if generate else 1):
        if generate:
            meta["name"] = meta["generateName"] + "".join(random.choice(_NAME_CHARS) for _ in range(5))
        candidate = deep_copy(obj) if generate else obj
        default_and_validate(info, candidate, None)
        name = candidate["metadata"]["name"]
        if info.namespaced:
            await check_namespace(ctx, info, t.namespace or "", name)
        held = None
        if info.kind == "Service" and not info.group:
            from clusterctl.api.allocation import allocate_service
            held = await allocate_service(ctx, candidate, None, dry_run=dry_run)
        if dry_run:
            return Outcome(candidate, 201, warnings or [])
        key = info.key(t.namespace, name)
        try:
            item = await ctx.store.create(key, ctx.seal(info, key, candidate))
        except Exception as exc:
            if held is not None:  # the Service's reserved clusterIP/nodePorts go back
                from clusterctl.api.allocation import release_after_failed_write
                await release_after_failed_write(ctx, held)
            if not isinstance(exc, KeyExists):
                raise
            if generate and attempt < 7:
                continue
            raise errors.already_exists(info.plural, name, info.group) from None
        return Outcome(ctx.with_rv(candidate, item.mod_revision), 201, warnings or [])
    raise errors.already_exists(info.plural, meta.get("name", ""), info.group)


async def handle_create(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.Response:
    info = t.info
    obj, warnings = decode_object(raw, request.headers.get("Content-Type"), request.query, group=info.group,
                                  version=info.version, kind=info.kind)
    out = await create_object(ctx, t, obj, dry_run=is_dry_run(request.query), warnings=warnings)
    return object_response(request, info, out.obj, out.status, out.warnings)


# --- UPDATE ------------------------------------------------------------------------------------

_PRESERVED_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def prepare_update(ctx: ApiContext, info: KindInfo, old: dict, new: dict) -> dict:
    """Carry over what a client may not change, default, validate, bump generation."""
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        meta = new["metadata"] = {}
    old_meta = old.get("metadata") or {}
    for f in ("resourceVersion", "selfLink", "managedFields"):
        meta.pop(f, None)
    for f in _PRESERVED_META:
        if f in old_meta:
            meta[f] = old_meta[f]
        else:
            meta.pop(f, None)
    meta["name"] = old_meta.get("name")
    if info.namespaced:
        meta["namespace"] = old_meta.get("namespace")
    if info.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    merge_string_data(info, new)
    if info.kind == "Service" and not info.group:
        _keep_allocations(old, new)
    elif info.kind == "Pod" and not info.group:
        keep_admitted_priority(old, new)
        keep_admitted_pull_secrets(old, new)
    default_and_validate(info, new, old)
    if old_meta.get("deletionTimestamp"):
        added = [f for f in (meta.get("finalizers") or []) if f not in (old_meta.get("finalizers") or [])]
        if added:
            from clusterctl.api.errors import FieldError
            raise errors.invalid(info.kind, meta["name"], info.group, [FieldError.forbidden(
                "metadata.finalizers", "no new finalizers can be added if the object is being deleted, found new "
                "finalizers []string{" + ", ".join(f'"{f}"' for f in added) + "}")])
    if info.spec_fields and spec_of(info, new) != spec_of(info, old):
        meta["generation"] = int(old_meta.get("generation") or 1) + 1
    return new


def _keep_allocations(old: dict, new: dict) -> None:
    """Like Kubernetes' patchAllocatedValues: an update that omits clusterIP/nodePorts keeps them."""
    ospec, nspec = old.get("spec") or {}, new.get("spec")
    if not isinstance(nspec, dict):
        return
    if not nspec.get("clusterIP") and ospec.get("clusterIP") and nspec.get("type", "ClusterIP") != "ExternalName":
        nspec["clusterIP"] = ospec["clusterIP"]
        nspec["clusterIPs"] = ospec.get("clusterIPs") or [ospec["clusterIP"]]
    if nspec.get("type") in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in ospec.get("ports") or [] if isinstance(p, dict)}
        for p in nspec.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                np_ = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                if np_:
                    p["nodePort"] = np_


async def commit_update(ctx: ApiContext, t: Target, item: Item, old: dict, new: dict, *, dry_run: bool = False,
                        warnings: list[str] | None = None) -> Outcome:
    """Write ``new`` over ``item`` (compare-and-set on its revision); deletes when the last finalizer went."""
    info = t.info
    if new == old:
        return Outcome(ctx.with_rv(old, item.mod_revision), 200, warnings or [])
    if dry_run:
        return Outcome(ctx.with_rv(new, item.mod_revision), 200, warnings or [])
    meta = new.get("metadata") or {}
    if meta.get("deletionTimestamp") and not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds"):
        from clusterctl.api.lifecycle import remove_now
        deleted = await remove_now(ctx, info, item)   # a Service's reservations go there
        return Outcome(ctx.with_rv(new, deleted.mod_revision), 200, warnings or [])
    held = None
    if info.kind == "Service" and not info.group:  # what the update adds (a type change, a new nodePort)
        from clusterctl.api.allocation import allocate_service
        held = await allocate_service(ctx, new, old)
    try:
        stored = await ctx.store.update(item.key, ctx.seal(info, item.key, new), expected_revision=item.mod_revision)
    except Exception as exc:
        if held is not None:
            from clusterctl.api.allocation import release_after_failed_write
            await release_after_failed_write(ctx, held)
        if isinstance(exc, KeyNotFound):
            raise errors.not_found(info.plural, meta.get("name", ""), info.group) from None
        raise
    if info.kind == "Service" and not info.group:
        from clusterctl.api.allocation import release_dropped
        await release_dropped(ctx, old, new)
    return Outcome(ctx.with_rv(new, stored.mod_revision), 200, warnings or [])


def _check_name(info: KindInfo, t: Target, obj: dict) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    if meta.get("name") and meta["name"] != t.name:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({t.name})")
    if info.namespaced and meta.get("namespace") and meta["namespace"] != t.namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
    meta["name"] = t.name


def _expected_revision(obj: dict) -> int | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    if rv in (None, ""):
        return None
    try:
        return int(rv)
    except (TypeError, ValueError) as exc:
        raise errors.bad_request(f"invalid resourceVersion {rv!r}") from exc


async def update_with(ctx: ApiContext, t: Target, mutate, *, expected: int | None = None, dry_run: bool = False,
                      warnings: list[str] | None = None, authorize_old=None) -> Outcome:
    """Read-modify-write until it applies: ``mutate(old_copy, item) -> new`` (None = no change).

    Like Kubernetes' GuaranteedUpdate: a compare-and-set that loses to a concurrent write is
    retried against the object that won, which the store's ``RevisionConflict`` carries (the
    newest state, even a write still waiting for its fsync: re-reading the applied state would
    see the same stale object and lose again at once). There is no retry bound a busy server can
    hit: each lost round means another write landed. Only a client's own resourceVersion
    precondition (``expected``, or one in a patch's body) turns a mismatch into a 409.
    """
    info = t.info
    item = await get_item(ctx, t)
    while True:
        if expected is not None and item.mod_revision != expected:
            raise errors.conflict(info.plural, t.name or "", info.group)
        old = ctx.load(item)
        if authorize_old is not None:
            authorize_old(old)
        # the mutator's own copy: a second decode of the stored JSON is cheaper than copying `old`
        # (Secrets are stored sealed: their raw bytes are not the object)
        own = orjson.loads(item.raw) if item.raw is not None and not (info.kind == "Secret" and not info.group) \
            else deep_copy(old)
        new = mutate(own, item)
        if new is None:
            return Outcome(ctx.with_rv(old, item.mod_revision), 200, warnings or [])
        try:
            return await commit_update(ctx, t, item, old, new, dry_run=dry_run, warnings=warnings)
        except RevisionConflict as exc:
            if expected is not None:
                raise errors.conflict(info.plural, t.name or "", info.group) from None
            item = exc.current


def status_only(old: dict, new_status: Any) -> dict:
    out = dict(old)
    out["metadata"] = dict(old.get("metadata") or {})
    if new_status is None:
        out.pop("status", None)
    else:
        out["status"] = new_status
    return out


async def handle_update(ctx: ApiContext, t: Target, request: web.Request, raw: bytes, authorize_old=None) -> web.Response:
    info = t.info
    obj, warnings = decode_object(raw, request.headers.get("Content-Type"), request.query, group=info.group,
                                  version=info.version, kind=info.kind)
    _check_name(info, t, obj)
    expected = _expected_revision(obj)
    dry_run = is_dry_run(request.query)

    if t.subresource == "status":
        def mutate(old: dict, item: Item) -> dict:
            return status_only(old, obj.get("status"))
    else:
        def mutate(old: dict, item: Item) -> dict:
            return prepare_update(ctx, info, old, deep_copy(obj))
    out = await update_with(ctx, t, mutate, expected=expected, dry_run=dry_run, warnings=warnings,
                            authorize_old=authorize_old)
    return object_response(request, info, out.obj, out.status, out.warnings)


# --- PATCH -------------------------------------------------------------------------------------

def parse_patch(raw: bytes, content_type: str | None) -> tuple[str, Any]:
    mt = decoding.media_type(content_type)
    if mt == "application/apply-patch+yaml":
        raise errors.unsupported_media_type(mt, [p for p in PATCH_TYPES if p != "application/apply-patch+yaml"]
                                            + ["(server-side apply is not implemented by clusterctl: use client-side "
                                               "`kubectl apply`)"])
    if mt not in PATCH_TYPES:
        raise errors.unsupported_media_type(mt, PATCH_TYPES)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from exc
    except RecursionError as exc:
        raise errors.bad_request("error decoding patch: nested too deeply") from exc
    if mt == "application/json-patch+json":
        if not isinstance(doc, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    elif not isinstance(doc, dict):
        raise errors.bad_request(f"error decoding patch: expected a JSON object, got {decoding._json_type(doc)}")
    return mt, doc


def apply_patch(info: KindInfo, group: str, version: str, kind: str, current: dict, mt: str, doc: Any) -> dict:
    from clusterctl.api import patch as patching
    try:
        if mt == "application/json-patch+json":
            return patching.apply_json_patch(current, doc)
        if mt == "application/merge-patch+json":
            return patching.apply_merge_patch(current, doc)
        return patching.apply_strategic_merge_patch(current, doc, group=group, version=version, kind=kind)
    except patching.UnsupportedPatch as exc:
        raise errors.unsupported_media_type(mt, [p for p in PATCH_TYPES if "strategic" not in p]) from exc
    except patching.PatchError as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from exc


def check_patched(patched: Any, params: Mapping[str, str], *, group: str, version: str, kind: str) -> list[str]:
    """Field-validate a patch result like a decoded body (type errors 400/422, unknown fields per fieldValidation)."""
    if not isinstance(patched, dict):
        raise ApiError(422, "Invalid", "the patch produced something that is not an object")
    ensure_encodable(patched, kind, version)
    fv = field_validation(params)
    report = decoding.check_fields(patched, group=group, version=version, kind=kind)
    if report.type_errors:
        raise ApiError(422, "Invalid", f"{kind} in version \"{version}\" cannot be handled as a {kind}: "
                       f"{report.type_errors[0]}")
    if report.unknown and fv == "Strict":
        raise errors.cannot_handle(kind, version, decoding.strict_message(report))
    return decoding.warnings_for(report) if fv == "Warn" else []


def _touched(patched: Any, doc: Any) -> Any:
    """What field validation must see of a patch result: with a merge or strategic patch (an
    object) only the top-level fields the patch names can have changed — the rest is the stored,
    already validated object — so the walk skips them (a node's status patch of a pod does not
    re-walk its spec). JSON patches (a list of ops) may touch anything: the whole result.
    The view shares the result's values, so the walk's pruning of unknown fields reaches them."""
    if not isinstance(patched, dict) or not isinstance(doc, dict):
        return patched
    view = {k: v for k, v in patched.items() if k in doc or k in ("apiVersion", "kind")}
    return view


async def handle_patch(ctx: ApiContext, t: Target, request: web.Request, raw: bytes, authorize_old=None) -> web.Response:
    info = t.info
    mt, doc = parse_patch(raw, request.headers.get("Content-Type"))
    params = request.query
    dry_run = is_dry_run(params)
    state: dict[str, Any] = {"warnings": [], "expected": None}

    def mutate(old: dict, item: Item) -> dict:
        current = ctx.with_rv(old, item.mod_revision)
        patched = apply_patch(info, info.group, info.version, info.kind, current, mt, doc)
        checked = _touched(patched, doc)
        state["warnings"] = check_patched(checked, params, group=info.group, version=info.version, kind=info.kind)
        if checked is not patched:  # the walk drops unknown fields: top-level ones from the view only
            for k in [k for k in patched if k not in checked and k in doc]:
                del patched[k]
        rv = _expected_revision(patched)
        if rv is not None and rv != item.mod_revision:
            raise errors.conflict(info.plural, t.name or "", info.group)
        meta = patched.get("metadata")
        if isinstance(meta, dict):
            meta.pop("resourceVersion", None)
            if meta.get("name") not in (None, t.name):
                raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({t.name})")
        if t.subresource == "status":
            return status_only(old, patched.get("status"))
        patched["apiVersion"], patched["kind"] = info.api_version, info.kind
        return prepare_update(ctx, info, old, patched)

    out = await update_with(ctx, t, mutate, dry_run=dry_run, authorize_old=authorize_old)
    return object_response(request, info, out.obj, out.status, state["warnings"])


# --- DELETE ------------------------------------------------------------------------------------

def delete_options(raw: bytes, params: Mapping[str, str], content_type: str | None = None) -> dict:
    opts: dict[str, Any] = {}
    if raw and raw.startswith(b"k8s\x00"):
        from clusterctl.api import protobuf
        body = protobuf.decode(raw)
        body.pop("apiVersion", None), body.pop("kind", None)
        opts.update(body)
    elif raw and raw.strip():
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"couldn't decode DeleteOptions: {exc}") from exc
        if not isinstance(body, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        opts.update(body)
    grace = _int_param(params, "gracePeriodSeconds")
    if grace is not None:
        opts["gracePeriodSeconds"] = grace
    if params.get("propagationPolicy"):
        opts["propagationPolicy"] = params["propagationPolicy"]
    if params.get("orphanDependents") in ("true", "false"):
        opts["orphanDependents"] = params["orphanDependents"] == "true"
    if params.get("dryRun"):
        opts["dryRun"] = params.getall("dryRun") if hasattr(params, "getall") else [params["dryRun"]]
    policy = opts.get("propagationPolicy")
    if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
        raise errors.ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                              f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"')
    if opts.get("orphanDependents") is True and policy is None:
        opts["propagationPolicy"] = "Orphan"
    g = opts.get("gracePeriodSeconds")
    if g is not None and (isinstance(g, bool) or not isinstance(g, int)):
        raise errors.bad_request("gracePeriodSeconds must be an integer")
    for v in opts.get("dryRun") or []:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value: "{v}" (only "All" is supported)')
    return opts


def check_preconditions(info: KindInfo, t: Target, item: Item, obj: dict, opts: dict) -> None:
    pre = opts.get("preconditions") or {}
    if not isinstance(pre, dict):
        return
    meta = obj.get("metadata") or {}
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.conflict(info.plural, t.name or "", info.group,
                              why=f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
    if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(item.mod_revision):
        raise errors.conflict(info.plural, t.name or "", info.group,
                              why=f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {item.mod_revision}")


async def handle_delete(ctx: ApiContext, t: Target, request: web.Request, raw: bytes, authorize_old=None) -> web.Response:
    from clusterctl.api.lifecycle import delete_object
    opts = delete_options(raw, request.query)
    item = await get_item(ctx, t)
    while True:  # as update_with: a lost compare-and-set is retried against the write that won
        obj = ctx.load(item)
        if authorize_old is not None:
            authorize_old(obj)
        check_preconditions(t.info, t, item, obj, opts)
        try:
            out = await delete_object(ctx, t.info, item, opts)
        except RevisionConflict as exc:
            item = exc.current
            continue
        return object_response(request, t.info, out.obj, out.status)


async def handle_deletecollection(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.Response:
    from clusterctl.api.lifecycle import delete_object
    opts = delete_options(raw, request.query)
    params = {k: v for k, v in request.query.items() if k not in ("limit", "continue")}
    items, revision, _ = await list_items(ctx, t, params)
    deleted = []
    for item in items:
        try:
            out = await delete_object(ctx, t.info, item, opts)
        except (RevisionConflict, KeyNotFound):
            continue
        deleted.append(out.obj)
    return json_response({"kind": t.info.list_kind, "apiVersion": t.info.api_version,
                          "metadata": {"resourceVersion": str(ctx.store.revision)}, "items": deleted})

