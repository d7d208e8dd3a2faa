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


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
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
        try:
            value = yaml.load(raw, Loader=_DupSafeLoader)  # noqa: S506 - a SafeLoader subclass
        except RecursionError as exc:
            raise errors.bad_request("error converting YAML to JSON: the document is nested too deeply") from exc
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}".replace("\n", " ")) from exc
        return Body(value, _has_dup(value))
    if mt in JSON_TYPES or mt == "" or mt.endswith("+json"):
        if detect_duplicates:
            try:
                text = raw.decode("utf-8")
                value = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
            except RecursionError as exc:
                raise errors.bad_request("couldn't get version/kind; json parse error: the object is nested too deeply") from exc
            except (UnicodeDecodeError, ValueError) as exc:
                raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
            return Body(value, _has_dup(value))
        try:
            return Body(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    raise errors.unsupported_media_type(mt, ["application/json", "application/yaml"])


def _has_dup(value: Any) -> bool:
    if isinstance(value, _DupDict):
        return True
    if isinstance(value, dict):
        return any(_has_dup(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_dup(v) for v in value)
    return False


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


def _deref(schema: dict) -> tuple[dict, str | None]:
    name = None
    for _ in range(8):
        if "allOf" in schema and schema["allOf"] and len(schema) <= 3 and "$ref" in schema["allOf"][0]:
            schema = schema["allOf"][0]
        ref = schema.get("$ref")
        if not ref:
            break
        name = ref.removeprefix(_REF)
        schema = definitions().get(name, _ANY)
    return schema, name


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


def _int_in_range(value: int, fmt: str | None) -> bool:
    lo, hi = _INT_RANGES.get(fmt or "", (-(1 << 63), (1 << 63) - 1))
    return lo <= value <= hi


def _type_ok(value: Any, t: str) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return True


def _go_type(def_name: str | None, prop: str, schema: dict) -> str:
    if def_name:
        go = _go_fields().get(def_name, {}).get(prop, {}).get("go")
        if go:
            return go.lstrip("*")
    t = schema.get("type", "object")
    return {"integer": schema.get("format", "int64"), "boolean": "bool", "array": "[]interface {}",
            "object": "map[string]interface {}"}.get(t, t)


def _walk(value: Any, schema: dict, path: str, report: DecodeReport, owner: tuple[str | None, str, str]) -> None:
    """Check ``value`` against ``schema`` in place: drop unknown fields, record problems."""
    if value is None:
        return
    schema, name = _deref(schema)
    if schema.get("x-kubernetes-preserve-unknown-fields") or name == "io.k8s.apimachinery.pkg.runtime.RawExtension":
        return
    if "oneOf" in schema:
        if not any(_type_ok(value, alt.get("type", "")) for alt in schema["oneOf"]):
            _type_error(value, schema, path, report, owner)
        return
    props = schema.get("properties")
    stype = schema.get("type") or ("object" if props is not None or "additionalProperties" in schema else None)
    if stype is None:
        return
    if not _type_ok(value, stype) or (stype == "integer" and not _int_in_range(value, schema.get("format"))):
        _type_error(value, schema, path, report, owner)
        return
    if stype == "array":
        items = schema.get("items")
        if items:
            for i, item in enumerate(value):
                _walk(item, items, f"{path}[{i}]", report, owner)
        return
    if stype != "object":
        return
    if isinstance(value, _DupDict):
        for k in value.duplicates:
            report.duplicates.append(f"{path}.{k}" if path else k)
    if props is None:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for k, v in value.items():
                _walk(v, extra, f"{path}[{k}]" if path else k, report, (None, k, path))
        return
    extra = schema.get("additionalProperties")
    unknown = []
    for k, v in value.items():
        sub = props.get(k)
        child = f"{path}.{k}" if path else k
        if sub is None:
            if isinstance(extra, dict):
                _walk(v, extra, child, report, (name, k, path))
            elif extra is not True:
                unknown.append(k)
                report.unknown.append(child)
            continue
        _walk(v, sub, child, report, (name, k, child))
    for k in unknown:
        del value[k]


def _type_error(value: Any, schema: dict, path: str, report: DecodeReport, owner: tuple[str | None, str, str]) -> None:
    def_name, prop, _ = owner
    short = (def_name or "").rsplit(".", 1)[-1]
    jt = _json_type(value)
    if jt == "number":
        jt = f"number {value}" if isinstance(value, float) else "number"
    go = _go_type(def_name, prop, schema)
    if short:
        report.type_errors.append(f"json: cannot unmarshal {jt} into Go struct field {short}.{path} of type {go}")
    else:
        report.type_errors.append(f"json: cannot unmarshal {jt} into Go value of type {go} ({path})")


@lru_cache(maxsize=None)
def _root_schema(group: str, version: str, kind: str) -> dict | None:
    name = kind_index().get((group, version, kind))
    return definitions().get(name) if name else None


def check_fields(obj: dict, *, group: str, version: str, kind: str) -> DecodeReport:
    """Walk ``obj`` (mutated: unknown fields removed) along the kind's schema."""
    report = DecodeReport()
    schema = _root_schema(group, version, kind)
    if schema is not None:
        _walk(obj, {"$ref": _REF + kind_index()[(group, version, kind)]}, "", report, (None, "", ""))
    return report


def strict_message(report: DecodeReport) -> str:
    parts = [f'unknown field "{p}"' for p in report.unknown] + [f'duplicate field "{p}"' for p in report.duplicates]
    return "strict decoding error: " + ", ".join(parts)


def warnings_for(report: DecodeReport) -> list[str]:
    return [f'unknown field "{p}"' for p in report.unknown] + [f'duplicate field "{p}"' for p in report.duplicates]
