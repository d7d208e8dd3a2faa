"""The ``/openapi/v3`` documents kubectl reads, and unknown-field detection from the same schemas.

kubectl 1.32 depends on ``/openapi/v3`` in three places, and each shapes what is here:
- before ``apply``/``create`` with ``--validate=strict`` (its default) it looks, in the group/
  version document, for a PATCH operation whose ``x-kubernetes-group-version-kind`` is the
  object's kind and which has a ``fieldValidation`` query parameter; when found, it leaves
  validation to the server (``fieldValidation=Strict``), otherwise it validates client-side and
  fails with "error validating data". So every PATCH operation carries the GVK and the parameter.
- ``apply`` computes its three-way strategic merge patch from ``components.schemas`` (the schema
  whose ``x-kubernetes-group-version-kind`` matches, walked with the ``x-kubernetes-patch-*``
  extensions), if that GVK's PATCH operation accepts ``application/strategic-merge-patch+json``.
- ``explain`` renders the schemas and their descriptions.

The schemas are Kubernetes' published definitions (``openapi_schemas/definitions.json``,
generated from the official Python client and ``k8s.io/api``); paths and operations are derived
from the kinds registry, named as kube-apiserver names them (``readAppsV1NamespacedDeployment``).

``unknown_fields`` walks an object against the same schemas for ``fieldValidation=Strict|Warn``:
it names each field no schema declares, as ``spec.template.spec.containers[0].foo``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Protocol

from clusterctl.api.openapi_schemas import REF_PREFIX, definitions, kind_index, resolve

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
API_LEVEL = "v1.32.0"

#: The kind each subresource speaks when it is not the parent's (as kube-apiserver documents it).
SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
}
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
#: meta/v1 kinds every group/version document carries, as in Kubernetes.
META_SCHEMAS = ("Status", "DeleteOptions", "APIResourceList", "WatchEvent", "Patch")


class KindLike(Protocol):
    """What this module needs of a registry entry (``clusterctl.api.kinds.KindInfo`` fits)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...]


# --------------------------------------------------------------------------- schemas


def schema_for(group: str, version: str, kind: str) -> dict | None:
    """The OpenAPI schema of a kind (shared: do not mutate), or None when we have none."""
    name = kind_index().get((group, version, kind))
    return definitions()[name] if name else None


def definition_name(group: str, version: str, kind: str) -> str | None:
    return kind_index().get((group, version, kind))


def _refs(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX):])
        for child in value.values():
            _refs(child, found)
    elif isinstance(value, list):
        for child in value:
            _refs(child, found)


def _closure(names: Iterable[str]) -> dict[str, dict]:
    """The named definitions and every definition they reference, transitively."""
    defs = definitions()
    todo = [n for n in names if n in defs]
    seen: dict[str, dict] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = defs[name]
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(n for n in found if n in defs and n not in seen)
    return dict(sorted(seen.items()))


# --------------------------------------------------------------------------- unknown fields


def unknown_fields(obj: dict, group: str, version: str, kind: str) -> list[str]:
    """Paths of the fields in ``obj`` that the kind's schema does not declare (empty when the
    kind has no schema: nothing can be said)."""
    schema = schema_for(group, version, kind)
    if schema is None:
        return []
    found: list[str] = []
    _walk(obj, schema, "", found)
    return found


def _walk(value: Any, schema: dict | None, path: str, found: list[str]) -> None:
    schema = resolve(schema)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else key
                if key not in props:
                    found.append(child_path)
                else:
                    _walk(child, props[key], child_path, found)
            return
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, child in value.items():
                _walk(child, extra, f"{path}.{key}" if path else key, found)
        # a plain "type: object" (RawExtension, FieldsV1) holds anything
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, child in enumerate(value):
                _walk(child, items, f"{path}[{index}]", found)


# --------------------------------------------------------------------------- paths and operations


def _group_prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _camel_group(group: str) -> str:
    if not group:
        return "Core"
    return "".join(part[:1].upper() + part[1:] for part in group.split(".")[0].split("-"))


def _tag(group: str, version: str) -> str:
    return f"{(group.split('.')[0] if group else 'core').replace('-', '_')}_{version}"


def _param(name: str, where: str, description: str, schema: dict, required: bool = False) -> dict:
    param = {"name": name, "in": where, "description": description, "schema": schema}
    if required:
        param["required"] = True
    return param


_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}

PRETTY = _param("pretty", "query", "If 'true', then the output is pretty printed.", _STRING)
DRY_RUN = _param(
    "dryRun", "query",
    "When present, indicates that modifications should not be persisted. Valid value: All.", _STRING)
FIELD_MANAGER = _param(
    "fieldManager", "query", "fieldManager is a name associated with the actor or entity making these changes.",
    _STRING)
FIELD_VALIDATION = _param(
    "fieldValidation", "query",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) "
    "containing unknown or duplicate fields. Valid values are: - Ignore: drop them silently. "
    "- Warn: drop them and return a warning for each. - Strict: fail the request, naming each field. "
    "The default is Warn; kubectl sends Strict.", _STRING)
FORCE = _param(
    "force", "query",
    "Force is going to \"force\" Apply requests. It must be unset for non-apply patch requests.", _BOOL)
LIST_PARAMS = [
    _param("allowWatchBookmarks", "query", "Request watch events with type \"BOOKMARK\".", _BOOL),
    _param("continue", "query", "The continue option should be set when retrieving more results from the server.", _STRING),
    _param("fieldSelector", "query", "A selector to restrict the list of returned objects by their fields.", _STRING),
    _param("labelSelector", "query", "A selector to restrict the list of returned objects by their labels.", _STRING),
    _param("limit", "query", "limit is a maximum number of responses to return for a list call.", _INT),
    _param("resourceVersion", "query", "resourceVersion sets a constraint on what resource versions a request may be served from.", _STRING),
    _param("resourceVersionMatch", "query", "resourceVersionMatch determines how resourceVersion is applied to list calls.", _STRING),
    _param("sendInitialEvents", "query", "`sendInitialEvents=true` may be set together with `watch=true`.", _BOOL),
    _param("timeoutSeconds", "query", "Timeout for the list/watch call.", _INT),
    _param("watch", "query", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", _BOOL),
]
DELETE_PARAMS = [
    DRY_RUN,
    _param("gracePeriodSeconds", "query", "The duration in seconds before the object should be deleted.", _INT),
    _param("orphanDependents", "query", "Deprecated: please use the PropagationPolicy.", _BOOL),
    _param("propagationPolicy", "query",
           "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.", _STRING),
]
UNAUTHORIZED = {"401": {"description": "Unauthorized"}}
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _ref(name: str) -> dict:
    return {"$ref": REF_PREFIX + name}


def _content(name: str, *, watch: bool = False) -> dict:
    media = ["application/json", "application/yaml"]
    if watch:
        media = ["application/json", "application/json;stream=watch"]
    return {m: {"schema": _ref(name)} for m in media}


def _gvk(group: str, version: str, kind: str) -> dict:
    return {"group": group, "kind": kind, "version": version}


def _operation(
    op_id: str,
    description: str,
    action: str,
    gvk: dict,
    tag: str,
    *,
    params: list[dict] = (),
    responses: dict,
    body: dict | None = None,
) -> dict:
    operation = {"tags": [tag], "description": description, "operationId": op_id}
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = {**responses, **UNAUTHORIZED}
    operation["x-kubernetes-action"] = action
    operation["x-kubernetes-group-version-kind"] = gvk
    return operation


def _kind_paths(info: KindLike) -> dict[str, dict]:
    group, version, kind, plural = info.group, info.version, info.kind, info.plural
    verbs = set(getattr(info, "verbs", ALL_VERBS))
    prefix = _group_prefix(group, version)
    gv = _camel_group(group) + version[:1].upper() + version[1:]
    tag = _tag(group, version)
    gvk = _gvk(group, version, kind)
    obj = definition_name(group, version, kind)
    objlist = definition_name(group, version, kind + "List")
    scope = "Namespaced" if info.namespaced else ""
    ns_param = _param("namespace", "path", "object name and auth scope, such as for teams and projects", _STRING, True)
    name_param = _param("name", "path", f"name of the {kind}", _STRING, True)
    base = f"{prefix}/namespaces/{{namespace}}/{plural}" if info.namespaced else f"{prefix}/{plural}"
    base_params = [ns_param, PRETTY] if info.namespaced else [PRETTY]
    item_params = [name_param, *base_params]
    body = {"content": {"*/*": {"schema": _ref(obj)}}, "required": True} if obj else None
    ok = {"200": {"description": "OK", "content": _content(obj)}} if obj else {"200": {"description": "OK"}}
    paths: dict[str, dict] = {}

    collection: dict[str, Any] = {}
    if "list" in verbs and objlist:
        collection["get"] = _operation(
            f"list{gv}{scope}{kind}", f"list or watch objects of kind {kind}", "list", gvk, tag,
            params=LIST_PARAMS, responses={"200": {"description": "OK", "content": _content(objlist, watch=True)}})
    if "create" in verbs and obj:
        collection["post"] = _operation(
            f"create{gv}{scope}{kind}", f"create a {kind}", "post", gvk, tag,
            params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body=body,
            responses={**ok, "201": {"description": "Created", "content": _content(obj)},
                       "202": {"description": "Accepted", "content": _content(obj)}})
    if "deletecollection" in verbs:
        collection["delete"] = _operation(
            f"deletecollection{gv}{scope}{kind}", f"delete collection of {kind}", "deletecollection", gvk, tag,
            params=[*LIST_PARAMS, *DELETE_PARAMS],
            body={"content": {"*/*": {"schema": _ref(f"{META}.DeleteOptions")}}},
            responses={"200": {"description": "OK", "content": _content(f"{META}.Status")}})
    if collection:
        collection["parameters"] = base_params
        paths[base] = collection

    item: dict[str, Any] = {}
    if "get" in verbs and obj:
        item["get"] = _operation(f"read{gv}{scope}{kind}", f"read the specified {kind}", "get", gvk, tag, responses=ok)
    if "update" in verbs and obj:
        item["put"] = _operation(
            f"replace{gv}{scope}{kind}", f"replace the specified {kind}", "put", gvk, tag,
            params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body=body,
            responses={**ok, "201": {"description": "Created", "content": _content(obj)}})
    if "patch" in verbs and obj:
        item["patch"] = _patch_operation(f"patch{gv}{scope}{kind}", f"partially update the specified {kind}", gvk, tag, obj)
    if "delete" in verbs:
        item["delete"] = _operation(
            f"delete{gv}{scope}{kind}", f"delete a {kind}", "delete", gvk, tag, params=DELETE_PARAMS,
            body={"content": {"*/*": {"schema": _ref(f"{META}.DeleteOptions")}}},
            responses={"200": {"description": "OK", "content": _content(f"{META}.Status")},
                       "202": {"description": "Accepted", "content": _content(f"{META}.Status")}})
    if item:
        item["parameters"] = item_params
        paths[f"{base}/{{name}}"] = item

    for sub in info.subresources:
        sub_path, sub_item = _subresource_path(info, sub, base, item_params, gv, scope, tag)
        if sub_item:
            paths[sub_path] = sub_item

    if "list" in verbs and info.namespaced and objlist:
        paths[f"{prefix}/{plural}"] = {
            "get": _operation(
                f"list{gv}{kind}ForAllNamespaces", f"list or watch objects of kind {kind}", "list", gvk, tag,
                params=LIST_PARAMS, responses={"200": {"description": "OK", "content": _content(objlist, watch=True)}}),
            "parameters": [PRETTY],
        }
    if "watch" in verbs:
        event = {"200": {"description": "OK", "content": _content(f"{META}.WatchEvent", watch=True)}}
        watch_base = (f"{prefix}/watch/namespaces/{{namespace}}/{plural}" if info.namespaced
                      else f"{prefix}/watch/{plural}")
        paths[watch_base] = {
            "get": _operation(f"watch{gv}{scope}{kind}List", f"watch individual changes to a list of {kind}",
                              "watchlist", gvk, tag, params=LIST_PARAMS, responses=event),
            "parameters": base_params,
        }
        paths[f"{watch_base}/{{name}}"] = {
            "get": _operation(f"watch{gv}{scope}{kind}", f"watch changes to an object of kind {kind}",
                              "watch", gvk, tag, params=LIST_PARAMS, responses=event),
            "parameters": item_params,
        }
        if info.namespaced:
            paths[f"{prefix}/watch/{plural}"] = {
                "get": _operation(f"watch{gv}{kind}ListForAllNamespaces",
                                  f"watch individual changes to a list of {kind}", "watchlist", gvk, tag,
                                  params=LIST_PARAMS, responses=event),
                "parameters": [PRETTY],
            }
    return paths


def _patch_operation(op_id: str, description: str, gvk: dict, tag: str, obj: str) -> dict:
    body = {"content": {t: {"schema": _ref(f"{META}.Patch")} for t in PATCH_TYPES}, "required": True}
    ok = {"200": {"description": "OK", "content": _content(obj)},
          "201": {"description": "Created", "content": _content(obj)}}
    return _operation(op_id, description, "patch", gvk, tag,
                      params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE], body=body, responses=ok)


def _subresource_path(
    info: KindLike, sub: str, base: str, item_params: list[dict], gv: str, scope: str, tag: str
) -> tuple[str, dict]:
    group, version, kind = SUBRESOURCE_KINDS.get(sub, (info.group, info.version, info.kind))
    gvk = _gvk(group, version, kind)
    obj = definition_name(group, version, kind)
    path = f"{base}/{{name}}/{sub}"
    params = [
        _param("name", "path", f"name of the {kind}", _STRING, True),
        *item_params[1:],
    ]
    if obj is None:
        return path, {}
    ok = {"200": {"description": "OK", "content": _content(obj)}}
    body = {"content": {"*/*": {"schema": _ref(obj)}}, "required": True}
    suffix = sub[:1].upper() + sub[1:]
    item: dict[str, Any] = {}
    if sub in ("binding", "eviction"):
        item["post"] = _operation(
            f"create{gv}{scope}{info.kind}{suffix}", f"create {kind} of a {info.kind}", "post", gvk, tag,
            params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body=body,
            responses={**ok, "201": {"description": "Created", "content": _content(obj)},
                       "202": {"description": "Accepted", "content": _content(obj)}})
    else:
        item["get"] = _operation(f"read{gv}{scope}{info.kind}{suffix}", f"read {sub} of the specified {info.kind}",
                                 "get", gvk, tag, responses=ok)
        item["put"] = _operation(
            f"replace{gv}{scope}{info.kind}{suffix}", f"replace {sub} of the specified {info.kind}", "put", gvk, tag,
            params=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body=body,
            responses={**ok, "201": {"description": "Created", "content": _content(obj)}})
        item["patch"] = _patch_operation(f"patch{gv}{scope}{info.kind}{suffix}",
                                         f"partially update {sub} of the specified {info.kind}", gvk, tag, obj)
    item["parameters"] = params
    return path, item


# --------------------------------------------------------------------------- documents


def _signature(registry: Iterable[KindLike], group: str, version: str) -> tuple:
    return tuple(
        (k.group, k.version, k.kind, k.plural, bool(k.namespaced), tuple(k.subresources),
         tuple(getattr(k, "verbs", ALL_VERBS)))
        for k in registry
        if k.group == group and k.version == version
    )


@lru_cache(maxsize=64)
def _document(signature: tuple, group: str, version: str) -> tuple[dict, bytes, str]:
    kinds = [_SignatureKind(*entry) for entry in signature]
    prefix = _group_prefix(group, version)
    tag = _tag(group, version)
    paths: dict[str, dict] = {
        f"{prefix}/": {
            "get": {
                "tags": [tag],
                "description": "get available resources",
                "operationId": f"get{_camel_group(group)}{version[:1].upper()}{version[1:]}APIResources",
                "responses": {"200": {"description": "OK", "content": _content(f"{META}.APIResourceList")},
                              **UNAUTHORIZED},
            }
        }
    }
    roots: list[str] = [f"{META}.{name}" for name in META_SCHEMAS]
    for info in kinds:
        paths.update(_kind_paths(info))
        for kind in (info.kind, info.kind + "List"):
            name = definition_name(info.group, info.version, kind)
            if name:
                roots.append(name)
        for sub in info.subresources:
            if sub in SUBRESOURCE_KINDS:
                name = definition_name(*SUBRESOURCE_KINDS[sub])
                if name:
                    roots.append(name)
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": API_LEVEL},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _closure(roots),
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                "name": "authorization", "in": "header"}
            },
        },
        "security": [{"BearerToken": []}],
    }
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha512(body).hexdigest().upper()
    return document, body, digest


class _SignatureKind:
    __slots__ = ("group", "version", "kind", "plural", "namespaced", "subresources", "verbs")

    def __init__(self, group, version, kind, plural, namespaced, subresources, verbs) -> None:
        self.group, self.version, self.kind, self.plural = group, version, kind, plural
        self.namespaced, self.subresources, self.verbs = namespaced, subresources, verbs


def group_versions(registry: Iterable[KindLike]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for info in registry:
        if (info.group, info.version) not in seen:
            seen.append((info.group, info.version))
    return seen


def document_path(group: str, version: str) -> str:
    """The key of a group/version in ``/openapi/v3``: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_document(registry: Iterable[KindLike], group: str, version: str) -> dict | None:
    """The OpenAPI 3.0 document of one group/version (``/openapi/v3/apis/<g>/<v>``), or None when
    the registry serves nothing there. Cached and shared: do not mutate."""
    signature = _signature(list(registry), group, version)
    if not signature:
        return None
    return _document(signature, group, version)[0]


def openapi_v3_document_json(registry: Iterable[KindLike], group: str, version: str) -> tuple[bytes, str] | None:
    """The same document as compact JSON bytes, and its hash (for ``?hash=`` and an ETag)."""
    signature = _signature(list(registry), group, version)
    if not signature:
        return None
    _, body, digest = _document(signature, group, version)
    return body, digest


def openapi_v3_index(registry: Iterable[KindLike]) -> dict:
    """The ``/openapi/v3`` discovery document: one ``serverRelativeURL`` per group/version."""
    kinds = list(registry)
    paths = {}
    for group, version in group_versions(kinds):
        _, _, digest = _document(_signature(kinds, group, version), group, version)
        key = document_path(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": dict(sorted(paths.items()))}
