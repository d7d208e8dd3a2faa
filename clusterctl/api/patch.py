"""The three patch formats of the Kubernetes API, applied to plain JSON objects.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null`` deletes,
  everything else (lists included) replaces.
- JSON patch (RFC 6902, ``application/json-patch+json``): a list of add/remove/replace/move/copy/
  test operations addressed by JSON pointers.
- Strategic merge patch (``application/strategic-merge-patch+json``): Kubernetes' own format for
  built-in kinds, which kubectl apply/edit/patch and the official Python client send. Lists whose
  field has patch strategy ``merge`` are merged by their merge key (containers by ``name``, ports
  by ``containerPort``...), scalar ``merge`` lists (finalizers) merge as sets, other lists are
  replaced; directives ``$patch: replace|delete``, ``$retainKeys``, ``$setElementOrder/<field>``
  and ``$deleteFromPrimitiveList/<field>`` steer the merge.

The strategic merge follows apimachinery's ``pkg/util/strategicpatch`` behaviour, in apply mode
(``StrategicMergeMapPatch``: nulls that match nothing are ignored, deletion lists are applied).
Patch strategies and merge keys are read from the OpenAPI definitions we serve
(``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key``), which come from the one table
in ``openapi_schemas/patch_strategies.py``: the server merges exactly as kubectl assumes when it
computes a patch from ``/openapi/v3``.

All functions are pure: they return a new object and never mutate their inputs. Errors are
``PatchError`` naming the operation or field path; the API server turns them into a 422 (or 400)
``Status``; ``UnsupportedPatch`` (strategic merge for a kind we have no schema for) into a 415.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from clusterctl.api.openapi_schemas import kind_index, definitions, resolve
from clusterctl.errors import ClusterctlError

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"


class PatchError(ClusterctlError):
    """A patch is malformed or cannot be applied to the object; the message names the path/op."""


class UnsupportedPatch(PatchError):
    """The patch type is not available for this kind (strategic merge without a schema)."""


# --------------------------------------------------------------------------- helpers


def _bounded(function: Callable[..., dict]) -> Callable[..., dict]:
    """Turn a RecursionError from absurdly deep input into a PatchError (a 4xx, not a 5xx)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> dict:
        try:
            return function(*args, **kwargs)
        except RecursionError as exc:
            raise PatchError("the object or patch nests too deeply to be patched") from exc

    return wrapper


def _copy(value: Any) -> Any:
    """Deep copy of a JSON value (faster than ``copy.deepcopy`` for plain dicts/lists)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _json_kind(value: Any) -> str:
    """The JSON type of a value, as Go's ``reflect.TypeOf`` of decoded JSON would tell them apart."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _json_key(value: Any) -> Any:
    """A hashable key under which equal JSON scalars collide (1 == 1.0, but True != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, (dict, list)):
        return ("json", repr(value))
    return (_json_kind(value), value)


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return _json_kind(a) == _json_kind(b) and a == b


# --------------------------------------------------------------------------- RFC 7386


@_bounded
def apply_merge_patch(obj: dict, patch: dict) -> dict:
    """Apply a JSON merge patch (RFC 7386) and return the new object.

    ``obj`` is not modified, but the result shares its unpatched subtrees: pass a copy you own
    if you will modify the result."""
    if not isinstance(patch, dict):
        raise PatchError(f"merge patch must be a JSON object, got {_json_kind(patch)}")
    result = _merge_patch(obj, patch)
    if not isinstance(result, dict):
        raise PatchError("merge patch did not produce an object")
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    # Only the dicts on the patch's paths are copied; the rest of the result shares the target's
    # values (callers pass a copy they own: the API hands in a freshly decoded object). Patch
    # values are copied: a retried update applies the same patch document again.
    if not isinstance(patch, dict):
        return _copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- RFC 6902


@_bounded
def apply_json_patch(obj: dict, ops: list) -> dict:
    """Apply a JSON patch (RFC 6902) and return the new object."""
    if not isinstance(ops, list):
        raise PatchError(f"json patch must be a JSON array of operations, got {_json_kind(ops)}")
    doc: Any = _copy(obj)
    for number, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"json patch operation {number} must be an object")
        doc = _apply_operation(doc, op, number)
    if not isinstance(doc, dict):
        raise PatchError("json patch did not produce an object")
    return doc


def _parse_pointer(pointer: Any, where: str) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(f"{where}: path must be a string")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"{where}: JSON pointer {pointer!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _list_index(container: list, token: str, where: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{where}: invalid array index {token!r}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"{where}: array index {index} out of bounds (length {len(container)})")
    return index


def _resolve_parent(doc: Any, tokens: list[str], where: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{where}: path does not exist (missing {token!r})")
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, where, allow_end=False)]
        else:
            raise PatchError(f"{where}: cannot traverse into a {_json_kind(node)} at {token!r}")
    return node


def _get(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        return doc
    parent = _resolve_parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path does not exist (missing {last!r})")
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, where, allow_end=False)]
    raise PatchError(f"{where}: cannot index a {_json_kind(parent)} with {last!r}")


def _add(doc: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, where, allow_end=True), value)
    else:
        raise PatchError(f"{where}: cannot add to a {_json_kind(parent)}")
    return doc


def _remove(doc: Any, tokens: list[str], where: str) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent = _resolve_parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path does not exist (missing {last!r})")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, last, where, allow_end=False))
    raise PatchError(f"{where}: cannot remove from a {_json_kind(parent)}")


def _apply_operation(doc: Any, op: dict, number: int) -> Any:
    name = op.get("op")
    path = op.get("path")
    where = f"json patch operation {number} ({name} {path})"
    tokens = _parse_pointer(path, where)
    if name in ("add", "replace", "test") and "value" not in op:
        raise PatchError(f"{where}: missing 'value'")
    if name == "add":
        return _add(doc, tokens, _copy(op["value"]), where)
    if name == "remove":
        return _remove(doc, tokens, where)[0]
    if name == "replace":
        if not tokens:
            return _copy(op["value"])
        _get(doc, tokens, where)  # the target must exist
        doc, _ = _remove(doc, tokens, where)
        return _add(doc, tokens, _copy(op["value"]), where)
    if name in ("move", "copy"):
        source = _parse_pointer(op.get("from"), where + " from")
        if name == "move":
            if tokens[: len(source)] == source and len(tokens) > len(source):
                raise PatchError(f"{where}: cannot move {op.get('from')!r} into its own child")
            doc, value = _remove(doc, source, where)
        else:
            value = _copy(_get(doc, source, where))
        return _add(doc, tokens, value, where)
    if name == "test":
        actual = _get(doc, tokens, where)
        if not _json_equal(actual, op["value"]):
            raise PatchError(f"{where}: test failed: value is {actual!r}, expected {op['value']!r}")
        return doc
    raise PatchError(f"json patch operation {number}: unknown op {name!r}")


# --------------------------------------------------------------------------- strategic merge


class _Meta:
    """Patch metadata for one node of the schema: answers 'how is field K of this node merged?'.

    Mirrors apimachinery's ``PatchMetaFromOpenAPIV3``, but is lenient where the schema says
    nothing (an unknown field merges maps and replaces lists, as for an unstructured object).
    """

    __slots__ = ("schema", "name", "defs")

    def __init__(self, schema: dict | None, name: str, defs: Mapping[str, dict]) -> None:
        self.schema = schema
        self.name = name
        self.defs = defs

    def _field(self, key: str) -> dict | None:
        if self.schema is None:
            return None
        props = self.schema.get("properties")
        if props is not None:
            return props.get(key)
        extra = self.schema.get("additionalProperties")
        return extra if isinstance(extra, dict) else None

    @staticmethod
    def _extensions(field: dict | None) -> tuple[list[str], str]:
        if field is None:
            return [], ""
        strategies = field.get("x-kubernetes-patch-strategy", "")
        return (strategies.split(",") if strategies else []), field.get("x-kubernetes-patch-merge-key", "")

    def lookup_struct(self, key: str) -> tuple[_Meta, list[str], str]:
        field = self._field(key)
        strategies, merge_key = self._extensions(field)
        return _Meta(resolve(field, self.defs), f"{self.name}.{key}", self.defs), strategies, merge_key

    def lookup_slice(self, key: str) -> tuple[_Meta, list[str], str]:
        field = self._field(key)
        strategies, merge_key = self._extensions(field)
        element = field.get("items", field) if field is not None else None
        return _Meta(resolve(element, self.defs), f"{self.name}.{key}", self.defs), strategies, merge_key


def _split_strategies(strategies: list[str], where: str) -> tuple[bool, str]:
    """(has retainKeys, the other strategy) as apimachinery's extractRetainKeysPatchStrategy."""
    if not strategies:
        return False, ""
    if len(strategies) == 1:
        return (True, "") if strategies[0] == "retainKeys" else (False, strategies[0])
    if len(strategies) == 2 and "retainKeys" in strategies:
        other = strategies[1] if strategies[0] == "retainKeys" else strategies[0]
        return True, other
    raise PatchError(f"{where}: unexpected patch strategy {','.join(strategies)}")


def apply_strategic_merge_patch(obj: dict, patch: dict, *, group: str, version: str, kind: str) -> dict:
    """Apply a Kubernetes strategic merge patch to an object of a built-in kind."""
    name = kind_index().get((group, version, kind))
    if name is None:
        gv = f"{group}/{version}" if group else version
        raise UnsupportedPatch(
            f"strategic merge patch is not supported for {kind} ({gv}); use a JSON merge patch"
        )
    return strategic_merge(obj, patch, schema_name=name, defs=definitions(), label=kind)


@_bounded
def strategic_merge(
    obj: dict, patch: dict, *, schema_name: str, defs: Mapping[str, dict], label: str = ""
) -> dict:
    """Apply a strategic merge patch to ``obj`` described by ``defs[schema_name]`` (any OpenAPI v3
    ``components.schemas`` map carrying the patch extensions)."""
    if not isinstance(patch, dict):
        raise PatchError(f"strategic merge patch must be a JSON object, got {_json_kind(patch)}")
    label = label or schema_name
    meta = _Meta(defs[schema_name], label, defs)
    merged = _merge_map(_copy(obj), _copy(patch), meta, label)
    result = _strip_directives(merged)
    if not isinstance(result, dict):
        raise PatchError(f"strategic merge patch did not produce an object for {label}")
    return result


def _strip_directives(value: Any) -> Any:
    """Drop directive keys and null fields that a typed decode (as in Kubernetes) would drop."""
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if v is not None
            and k != DIRECTIVE
            and k != RETAIN_KEYS
            and not k.startswith((SET_ELEMENT_ORDER + "/", DELETE_FROM_PRIMITIVE_LIST + "/"))
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _remove_directive_maps(value: Any) -> tuple[Any, bool]:
    """apimachinery's removeDirectives: maps carrying ``$patch`` vanish; returns (value, keep)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out = {}
        for k, v in value.items():
            v, keep = _remove_directive_maps(v)
            if keep:
                out[k] = v
        return out, True
    if isinstance(value, list):
        out_list = []
        for v in value:
            v, keep = _remove_directive_maps(v)
            if keep:
                out_list.append(v)
        return out_list, True
    return value, True


def _discard_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


def _merge_map(original: dict | None, patch: dict, meta: _Meta, where: str) -> dict:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            return {k: v for k, v in patch.items() if k != DIRECTIVE}
        if directive == "delete":
            return {}
        raise PatchError(f"{where}: unknown patch type {directive!r} in {DIRECTIVE} of a map")
    original = {} if original is None else original
    _apply_retain_keys(original, patch, where)
    _merge_ordered_lists(original, patch, meta, where)

    for key, patch_value in patch.items():
        is_delete_list = False
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            key = _directive_field(key, DELETE_FROM_PRIMITIVE_LIST, where)
            is_delete_list = True
        path = f"{where}.{key}"
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _json_kind(original[key]) != _json_kind(patch_value):
            if not is_delete_list:
                value, keep = _remove_directive_maps(_discard_nulls(patch_value))
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        if isinstance(current, dict):
            sub, strategies, _ = meta.lookup_struct(key)
            _, strategy = _split_strategies(strategies, path)
            if strategy == "replace":
                original[key] = patch_value
            else:
                original[key] = _merge_map(current, patch_value, sub, path)
        elif isinstance(current, list):
            sub, strategies, merge_key = meta.lookup_slice(key)
            _, strategy = _split_strategies(strategies, path)
            if strategy == "merge" or is_delete_list:
                original[key] = _merge_list(current, patch_value, sub, merge_key, path, is_delete_list)
            else:
                original[key] = patch_value
        else:
            value, keep = _remove_directive_maps(patch_value)
            if keep:
                original[key] = value
            else:
                original.pop(key, None)
    return original


def _directive_field(key: str, prefix: str, where: str) -> str:
    head, sep, field = key.partition("/")
    if head != prefix or not sep:
        raise PatchError(f"{where}: invalid directive key {key!r}: expected {prefix}/<field>")
    return field


def _apply_retain_keys(original: dict, patch: dict, where: str) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError(f"{where}: {RETAIN_KEYS} must be a list of field names")
    keep = set(k for k in retain if isinstance(k, str))
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise PatchError(f"{where}: field {key!r} is in the patch but not in {RETAIN_KEYS} {retain}")
    for key in list(original):
        if key not in keep:
            del original[key]


def _merge_ordered_lists(original: dict, patch: dict, meta: _Meta, where: str) -> None:
    """Process ``$setElementOrder/<field>`` and the list it orders (apimachinery mergePatchIntoOriginal)."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        field = _directive_field(key, SET_ELEMENT_ORDER, where)
        path = f"{where}.{field}"
        if not isinstance(order, list):
            raise PatchError(f"{path}: {key} must be a list")
        original_list = original.get(field)
        patch_list = patch.get(field)
        found_original, found_patch = field in original, field in patch
        if found_original and not isinstance(original_list, list):
            raise PatchError(f"{path}: {key} orders a field that is not a list")
        if found_patch and not isinstance(patch_list, list):
            raise PatchError(f"{path}: {key} orders a patch value that is not a list")
        sub, strategies, merge_key = meta.lookup_slice(field)
        _, strategy = _split_strategies(strategies, path)
        _validate_order(patch_list or [], order, merge_key, path)
        server_order = original_list or []
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _remove_directive_maps(patch_list)[0]
        elif found_original and found_patch:
            if strategy == "merge":
                merged, server_order = _merge_list_tracking(original_list, patch_list, sub, merge_key, path)
            else:
                merged = patch_list
        else:
            continue
        if merge_key:
            in_order = {_json_key(_item_key(i, merge_key, path)) for i in order}
            patch_items = [m for m in merged if _json_key(_item_key(m, merge_key, path)) in in_order]
            server_only = [m for m in merged if _json_key(_item_key(m, merge_key, path)) not in in_order]
        else:
            in_order = {_json_key(i) for i in order}
            patch_items = [m for m in merged if _json_key(m) in in_order]
            server_only = [m for m in merged if _json_key(m) not in in_order]
        original[field] = _normalize_order(patch_items, server_only, order, server_order, merge_key, path)
        patch.pop(field, None)


def _item_key(item: Any, merge_key: str, path: str) -> Any:
    if not isinstance(item, dict):
        raise PatchError(f"{path}: list item {item!r} is not an object (merge key {merge_key!r})")
    if merge_key not in item:
        raise PatchError(f"{path}: list item {item!r} does not contain declared merge key {merge_key!r}")
    return item[merge_key]


def _validate_order(patch_list: list, order: list, merge_key: str, path: str) -> None:
    """Every non-deleted patch item appears in ``$setElementOrder``, in the same relative order."""
    if not patch_list or not order:
        return
    items = patch_list
    if merge_key:
        items = [i for i in patch_list if not (isinstance(i, dict) and i.get(DIRECTIVE) == "delete")]
    p = s = 0
    while p < len(items) and s < len(order):
        item = items[p]
        if isinstance(item, dict) and DIRECTIVE in item:
            p += 1
            continue
        if merge_key:
            equal = _json_key(_item_key(item, merge_key, path)) == _json_key(_item_key(order[s], merge_key, path))
        else:
            equal = _json_key(item) == _json_key(order[s])
        if equal:
            p += 1
        s += 1
    if p < len(items):
        raise PatchError(f"{path}: the order in the patch list doesn't match the {SET_ELEMENT_ORDER} list {order}")


def _element_kind(*lists: list, path: str) -> str | None:
    kind = None
    for items in lists:
        for item in items:
            item_kind = _json_kind(item)
            if item_kind == "array":
                raise PatchError(f"{path}: lists of lists cannot be merged")
            if kind is None:
                kind = item_kind
            elif kind != item_kind:
                raise PatchError(f"{path}: list element types are not identical")
    return kind


def _merge_list_tracking(original: list, patch: list, meta: _Meta, merge_key: str, path: str) -> tuple[list, list]:
    """Merge two lists and also return the live order ``$setElementOrder`` interleaves against.

    apimachinery deletes ``$patch: delete`` items from the live list in place and appends new
    items to it, so the live order it later consults is the live list after deletions, followed
    by as many appended items as were deleted (slots freed in the same backing array). We compute
    that order explicitly, so a kubectl apply that swaps one container for another orders the
    result exactly as kube-apiserver does.
    """
    merged = _merge_list(original, patch, meta, merge_key, path, False)
    if not merge_key or _element_kind(original, patch, path=path) != "object":
        return merged, original
    if any(isinstance(i, dict) and i.get(DIRECTIVE) == "replace" for i in patch):
        return merged, original
    remaining, _ = _apply_list_directives(original, patch, merge_key, path)
    deleted = len(original) - len(remaining)
    if deleted == 0:
        return merged, original
    live = {_json_key(_item_key(i, merge_key, path)) for i in remaining}
    appended = []
    for item in patch:
        if isinstance(item, dict) and DIRECTIVE in item:
            continue
        key = _json_key(_item_key(item, merge_key, path))
        if key not in live:
            live.add(key)
            appended.append(item)
    return merged, remaining + appended[:deleted]


def _merge_list(
    original: list, patch: list, meta: _Meta, merge_key: str, path: str, is_delete_list: bool
) -> list:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch, path=path)
    if kind != "object":
        if is_delete_list:
            drop = {_json_key(v) for v in patch}
            return [v for v in original if _json_key(v) not in drop]
        merged, seen = [], set()
        for value in original + patch:
            key = _json_key(value)
            if key not in seen:
                seen.add(key)
                merged.append(value)
        in_patch = {_json_key(v) for v in patch}
        patch_items = [m for m in merged if _json_key(m) in in_patch]
        server_only = [m for m in merged if _json_key(m) not in in_patch]
        return _normalize_order(patch_items, server_only, patch, original, "", path)
    if not merge_key:
        raise PatchError(f"{path}: cannot merge lists without merge key for {meta.name}")
    original, patch = _apply_list_directives(original, patch, merge_key, path)
    merged = list(original)
    positions = {_json_key(_item_key(item, merge_key, path)): i for i, item in enumerate(merged)}
    in_patch = {_json_key(_item_key(item, merge_key, path)) for item in patch}
    for item in patch:
        value = item[merge_key]
        key = _json_key(value)
        if key in positions:
            index = positions[key]
            merged[index] = _merge_map(merged[index], item, meta, f"{path}[{merge_key}={value}]")
        else:
            positions[key] = len(merged)
            merged.append(_copy(item))
    patch_items = [m for m in merged if _json_key(_item_key(m, merge_key, path)) in in_patch]
    server_only = [m for m in merged if _json_key(_item_key(m, merge_key, path)) not in in_patch]
    return _normalize_order(patch_items, server_only, patch, original, merge_key, path)


def _apply_list_directives(original: list, patch: list, merge_key: str, path: str) -> tuple[list, list]:
    """Handle ``$patch: delete|replace`` list items; returns (original, patch without them)."""
    plain: list = []
    replace = False
    for item in patch:
        directive = item.get(DIRECTIVE) if isinstance(item, dict) else None
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"{path}: {DIRECTIVE}: delete item {item!r} does not contain declared merge key {merge_key!r}")
            doomed = _json_key(item[merge_key])
            original = [o for o in original if _json_key(_item_key(o, merge_key, path)) != doomed]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError(f"{path}: merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"{path}: unknown patch type {directive!r} in {DIRECTIVE}")
    if replace:
        return plain, []
    return original, plain


def _normalize_order(
    patch_items: list, server_only: list, patch_order: list, server_order: list, merge_key: str, path: str
) -> list:
    """Order the merged list: patch items by the patch order, server-only items by the live order,
    interleaved by the live order (apimachinery normalizeElementOrder + mergeSortedSlice)."""

    def key_of(item: Any) -> Any:
        if merge_key:
            return _json_key(item.get(merge_key)) if isinstance(item, dict) else _json_key(None)
        return _json_key(item)

    def positions(items: list) -> dict:
        found: dict = {}
        for i, item in enumerate(items):
            found.setdefault(key_of(item), i)
        return found

    patch_pos, server_pos = positions(patch_order), positions(server_order)
    if merge_key:
        for item in patch_items + server_only:
            _item_key(item, merge_key, path)
        deleted = [i for i in patch_items if isinstance(i, dict) and i.get(DIRECTIVE) == "delete"]
        patch_items = [i for i in patch_items if not (isinstance(i, dict) and i.get(DIRECTIVE) == "delete")]
    else:
        deleted = []
    big = len(patch_order) + len(server_order) + 1
    patch_items = sorted(patch_items, key=lambda i: patch_pos.get(key_of(i), big)) + deleted
    server_only = sorted(server_only, key=lambda i: server_pos.get(key_of(i), big))

    merged: list = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            merged.append(patch_items[j])
            j += 1
        elif j >= len(patch_items):
            merged.append(server_only[i])
            i += 1
        else:
            left = server_pos.get(key_of(server_only[i]))
            right = server_pos.get(key_of(patch_items[j]))
            if left is not None and right is not None and left < right:
                merged.append(server_only[i])
                i += 1
            else:
                merged.append(patch_items[j])
                j += 1
    return merged
