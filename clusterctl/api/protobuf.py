"""Decode the Kubernetes protobuf bodies that kubectl sends, for the few kinds where it does.

kubectl's typed clients (``kubectl create namespace``, ``create configmap``/``secret``, the
eviction POSTs of ``kubectl drain``) send ``application/vnd.kubernetes.protobuf`` request bodies
even when the server answers JSON. A body is the magic ``k8s\\x00`` followed by a
``runtime.Unknown`` message (``typeMeta``, ``raw``) whose ``raw`` is the object in the wire format
generated from ``k8s.io/api``'s ``generated.proto``. We decode that wire format with a small
table of field numbers for the kinds kubectl actually sends this way (``MESSAGES``); any other
kind is a 415 naming the kind, so the client gets an actionable error instead of garbage.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from clusterctl.api import errors

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

# field number -> (json name, type). Types: string, int, bool, bytes, time, strings (repeated string),
# map (string->string), bmap (string->bytes as base64), a message name, or "[]Message" (repeated).
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
                   8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"),
                   10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", "map"), 12: ("annotations", "map"),
                   13: ("ownerReferences", "[]OwnerReference"), 14: ("finalizers", "strings")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "strings")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "bmap"), 4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bmap"), 3: ("type", "string"), 4: ("stringData", "map"),
               5: ("immutable", "bool")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"), 5: ("dryRun", "strings")},
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    "Binding": {1: ("metadata", "ObjectMeta"), 2: ("target", "ObjectReference")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                        5: ("apiVersion", "string"), 6: ("resourceVersion", "string"), 7: ("fieldPath", "string")},
    "Scale": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ScaleSpec")},
    "ScaleSpec": {1: ("replicas", "int")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta")},
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "rawbytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
}


class _Malformed(Exception):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise _Malformed("truncated length-delimited field")
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        yield num, wire, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for num, _, v in _fields(raw):
        if num == 1:
            key = v.decode()
        elif num == 2:
            value = v
    return key, value


def _decode(buf: bytes, message: str) -> dict:
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    for num, wire, value in _fields(buf):
        entry = table.get(num)
        if entry is None:
            continue
        name, typ = entry
        if typ == "string":
            out[name] = value.decode()
        elif typ == "rawbytes":
            out[name] = value
        elif typ == "int":
            out[name] = _signed(value) if wire == 0 else int.from_bytes(value, "little", signed=True)
        elif typ == "bool":
            out[name] = bool(value)
        elif typ == "strings":
            out.setdefault(name, []).append(value.decode())
        elif typ == "map":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = v.decode()
        elif typ == "bmap":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = base64.b64encode(v).decode()
        elif typ == "time":
            t = _decode(value, "Time")
            out[name] = dt.datetime.fromtimestamp(t.get("seconds", 0), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif typ.startswith("[]"):
            out.setdefault(name, []).append(_decode(value, typ[2:]))
        else:
            out[name] = _decode(value, typ)
    return out


def decode(body: bytes) -> dict:
    """A protobuf request body as the JSON-shaped object it encodes (400/415 when we cannot)."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body does not start with the Kubernetes magic number")
    try:
        unknown = _decode(body[len(MAGIC):], "Unknown")
        tm = unknown.get("typeMeta") or {}
        kind, api_version = tm.get("kind", ""), tm.get("apiVersion", "")
        if kind not in MESSAGES or kind in ("Unknown", "TypeMeta", "Time"):
            raise errors.unsupported_media_type(
                PROTOBUF, ["application/json", "application/yaml",
                           f"(protobuf only for {', '.join(k for k in ('Namespace', 'ConfigMap', 'Secret', 'Eviction', 'Binding', 'Scale', 'ServiceAccount'))}; "
                           f"got {kind or 'an unknown kind'})"])
        obj = _decode(unknown.get("raw") or b"", kind)
    except (_Malformed, UnicodeDecodeError, KeyError) as exc:
        raise errors.bad_request(f"malformed protobuf body: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
