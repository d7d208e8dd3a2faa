"""Request bodies: parse JSON/YAML, detect duplicate fields, check fields and types against the schema.

Kubernetes decodes a body into Go structs; two things fall out of that which clients rely on:
unknown fields and duplicate fields are reported by ``fieldValidation`` (Strict: 400
``strict decoding error: unknown field "spec.foo"``; Warn: dropped with a ``Warning`` header;
Ignore: dropped silently), and a value of the wrong JSON type is a 400 (``json: cannot unmarshal
string into Go struct field DeploymentSpec.spec.replicas of type int32``). We get both by walking
the parsed body along the kind's OpenAPI schema (``clusterctl.api.openapi_schemas``, the same
definitions ``/openapi/v3`` serves), dropping unknown fields as we go.

Duplicate keys are found while parsing: ``json.loads`` with an ``object_pairs_hook`` that marks
the dicts which had one, so the walk can name their path. YAML bodies get the same treatment
through a loader that records duplicate mapping keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
import yaml

from clusterctl.api import errors
from clusterctl.api.openapi_schemas import definitions, kind_index

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


class _DupDict(dict):
    """A dict parsed from an object that repeated some keys (the last value wins, as in Go)."""

    __slots__ = ("duplicates",)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON number {name}")


#: set by the parse hooks when an object repeated a key (parsing is synchronous: one flag suffices)
_SAW_DUPLICATE = [False]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        _SAW_DUPLICATE[0] = True
        d = _DupDict(d)
        seen: set[str] = set()
        dups = []
        for k, _ in pairs:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
        d.duplicates = dups
    return d


class _DupSafeLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    pairs = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        pairs.append((key if isinstance(key, str) else str(key), value))
    return _pairs_hook(pairs)


_DupSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class Body:
    value: Any
    has_duplicates: bool = False


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_body(raw: bytes, content_type: str | None, *, detect_duplicates: bool = True) -> Body:
    """Parse a request body as JSON or YAML. 400 when malformed, 415 for other media types."""
    mt = media_type(content_type)
    if not raw.strip():
        raise errors.bad_request("the request body is empty: an object was expected")
    if mt == "application/vnd.kubernetes.protobuf":
        from clusterctl.api import protobuf
        return Body(protobuf.decode(raw))
    if mt in YAML_TYPES:
        _SAW_DUPLICATE[0] = False
        try:
            value = yaml.load(raw, Loader=_DupSafeLoader)  # noqa: S506 - a SafeLoader subclass
        except RecursionError as exc:
            raise errors.bad_request("error converting YAML to JSON: the document is nested too deeply") from exc
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}".replace("\n", " ")) from exc
        return Body(value, _SAW_DUPLICATE[0])
    if mt in JSON_TYPES or mt == "" or mt.endswith("+json"):
        if detect_duplicates:
            _SAW_DUPLICATE[0] = False
            try:
                text = raw.decode("utf-8")
                value = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
            except RecursionError as exc:
                raise errors.bad_request("couldn't get version/kind; json parse error: the object is nested too deeply") from exc
            except (UnicodeDecodeError, ValueError) as exc:
                raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
            return Body(value, _SAW_DUPLICATE[0])
        try:
            return Body(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    raise errors.unsupported_media_type(mt, ["application/json", "application/yaml"])


# --- schema walk -------------------------------------------------------------------------------

_REF = "#/components/schemas/"
_ANY = {"x-kubernetes-preserve-unknown-fields": True}


@lru_cache(maxsize=None)
def _go_fields() -> dict:
    from clusterctl.api.openapi_schemas import DEFINITIONS_FILE
    path = DEFINITIONS_FILE.with_name("go_fields.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class _Node:
    """A schema compiled for the walk: dereferenced once, children compiled lazily and shared."""

    __slots__ = ("type", "fmt", "def_name", "props", "additional", "items", "one_of", "any", "_schema")

    def __init__(self, schema: dict, def_name: str | None):
        self._schema = schema
        self.def_name = def_name
        self.any = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or \
            def_name == "io.k8s.apimachinery.pkg.runtime.RawExtension"
        self.one_of = tuple(alt.get("type", "") for alt in schema["oneOf"]) if "oneOf" in schema else None
        props = schema.get("properties")
        self.type = schema.get("type") or ("object" if props is not None or "additionalProperties" in schema else None)
        self.fmt = schema.get("format")
        self.props: dict[str, tuple[dict, "_Node | None"]] | None = (
            {k: (v, None) for k, v in props.items()} if props is not None else None)
        extra = schema.get("additionalProperties")
        self.additional: Any = extra if extra is True else (_compile(extra) if isinstance(extra, dict) else None)
        items = schema.get("items")
        self.items = _compile(items) if isinstance(items, dict) else None

    def child(self, key: str) -> "_Node | None":
        entry = self.props.get(key)
        if entry is None:
            return None
        raw, node = entry
        if node is None:
            node = _compile(raw)
            self.props[key] = (raw, node)
        return node


_COMPILED: dict[str, _Node] = {}


def _compile(schema: dict) -> _Node:
    name = None
    for _ in range(8):
        if "allOf" in schema and schema["allOf"] and len(schema) <= 3 and "$ref" in schema["allOf"][0]:
            schema = schema["allOf"][0]
        ref = schema.get("$ref")
        if not ref:
            break
        name = ref.removeprefix(_REF)
        cached = _COMPILED.get(name)
        if cached is not None:
            return cached
        schema = definitions().get(name, _ANY)
    if name is not None:
        node = _COMPILED[name] = _Node.__new__(_Node)
        _Node.__init__(node, schema, name)
        return node
    return _Node(schema, None)


@dataclass
class DecodeReport:
    unknown: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    type_errors: list[str] = field(default_factory=list)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        return f"number {value}"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


_INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1)}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_LEAF_TYPES = frozenset(("string", "integer", "boolean", "number"))


def _type_ok(value: Any, t: str, fmt: str | None = None) -> bool:
    if t == "string":
        return value.__class__ is str
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return value.__class__ is list
    if t == "integer":
        if value.__class__ is not int:
            return False
        lo, hi = _INT_RANGES.get(fmt or "", _INT64)
        return lo <= value <= hi
    if t == "boolean":
        return value.__class__ is bool
    if t == "number":
        return value.__class__ in (int, float)
    return True


def _go_type(def_name: str | None, prop: str, node: _Node) -> str:
    if def_name:
        go = _go_fields().get(def_name, {}).get(prop, {}).get("go")
        if go:
            return go.lstrip("*")
    t = node.type or "object"
    return {"integer": node.fmt or "int64", "boolean": "bool", "array": "[]interface {}",
            "object": "map[string]interface {}"}.get(t, t)


def _walk(value: Any, node: _Node, path: str, report: DecodeReport, owner: tuple[str | None, str]) -> None:
    """Check ``value`` against ``node`` in place: drop unknown fields, record problems."""
    if value is None or node.any:
        return
    if node.one_of is not None:
        if not any(_type_ok(value, t) for t in node.one_of):
            _type_error(value, node, path, report, owner)
        return
    stype = node.type
    if stype is None:
        return
    if not _type_ok(value, stype, node.fmt):
        _type_error(value, node, path, report, owner)
        return
    if stype == "array":
        items = node.items
        if items is not None and not items.any:
            for i, item in enumerate(value):
                _walk(item, items, f"{path}[{i}]", report, owner)
        return
    if stype != "object":
        return
    if value.__class__ is _DupDict:
        for k in value.duplicates:
            report.duplicates.append(f"{path}.{k}" if path else k)
    if node.props is None:
        extra = node.additional
        if extra is not None and extra is not True:
            for k, v in value.items():
                _walk(v, extra, f"{path}[{k}]" if path else k, report, (None, k))
        return
    unknown = None
    name = node.def_name
    for k, v in value.items():
        sub = node.child(k)
        if sub is None:
            extra = node.additional
            if extra is True:
                continue
            if extra is not None:
                _walk(v, extra, f"{path}.{k}" if path else k, report, (name, k))
                continue
            if unknown is None:
                unknown = []
            unknown.append(k)
            report.unknown.append(f"{path}.{k}" if path else k)
            continue
        if v is None or sub.any:
            continue
        t = sub.type
        if t in _LEAF_TYPES and sub.one_of is None:
            if not _type_ok(v, t, sub.fmt):
                _type_error(v, sub, f"{path}.{k}" if path else k, report, (name, k))
            continue
        _walk(v, sub, f"{path}.{k}" if path else k, report, (name, k))
    if unknown:
        for k in unknown:
            del value[k]


def _type_error(value: Any, node: _Node, path: str, report: DecodeReport, owner: tuple[str | None, str]) -> None:
    def_name, prop = owner
    short = (def_name or "").rsplit(".", 1)[-1]
    jt = _json_type(value)
    if jt == "number" and isinstance(value, float):
        jt = f"number {value}"
    elif jt == "number" and isinstance(value, int) and node.type == "integer":
        jt = f"number {value}"
    go = _go_type(def_name, prop, node)
    if short:
        report.type_errors.append(f"json: cannot unmarshal {jt} into Go struct field {short}.{path} of type {go}")
    else:
        report.type_errors.append(f"json: cannot unmarshal {jt} into Go value of type {go} ({path})")


@lru_cache(maxsize=None)
def _root_node(group: str, version: str, kind: str) -> _Node | None:
    name = kind_index().get((group, version, kind))
    return _compile({"$ref": _REF + name}) if name else None


def _clean(value: Any, node: _Node) -> bool:
    """True when ``_walk`` would find nothing to report or remove in ``value``: the common case,
    checked without building a path string or a report per field (~4x cheaper than the walk,
    which then runs only for bodies that have something to say). Must stay conservative:
    anything ``_walk`` would record makes this False."""
    if value is None or node.any:
        return True
    if node.one_of is not None:
        return any(_type_ok(value, t) for t in node.one_of)
    stype = node.type
    if stype is None:
        return True
    if not _type_ok(value, stype, node.fmt):
        return False
    if stype == "array":
        items = node.items
        if items is not None and not items.any:
            for item in value:
                if not _clean(item, items):
                    return False
        return True
    if stype != "object":
        return True
    if value.__class__ is _DupDict and value.duplicates:
        return False
    props = node.props
    if props is None:
        extra = node.additional
        if extra is not None and extra is not True:
            for v in value.values():
                if not _clean(v, extra):
                    return False
        return True
    for k, v in value.items():
        entry = props.get(k)
        if entry is None:
            extra = node.additional
            if extra is True:
                continue
            if extra is None or not _clean(v, extra):
                return False
            continue
        sub = entry[1]
        if sub is None:
            sub = node.child(k)
        if v is None or sub.any:
            continue
        t = sub.type
        if t == "string" and sub.one_of is None:
            if v.__class__ is not str:
                return False
        elif t in _LEAF_TYPES and sub.one_of is None:
            if not _type_ok(v, t, sub.fmt):
                return False
        elif not _clean(v, sub):
            return False
    return True


def check_fields(obj: dict, *, group: str, version: str, kind: str) -> DecodeReport:
    """Walk ``obj`` (mutated: unknown fields removed) along the kind's schema."""
    report = DecodeReport()
    node = _root_node(group, version, kind)
    if node is not None and not _clean(obj, node):
        _walk(obj, node, "", report, (None, ""))
    return report


def strict_message(report: DecodeReport) -> str:
    parts = [f'unknown field "{p}"' for p in report.unknown] + [f'duplicate field "{p}"' for p in report.duplicates]
    return "strict decoding error: " + ", ".join(parts)


def warnings_for(report: DecodeReport) -> list[str]:
    return [f'unknown field "{p}"' for p in report.unknown] + [f'duplicate field "{p}"' for p in report.duplicates]
