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

# field number -> (json name, type). Types: string, int (zero = unset), pint (pointer: zero kept),
# bool, time, intstr, strings (repeated string), qmap (string->Quantity),
# map (string->string), bmap (string->bytes as base64), a message name, or "[]Message" (repeated).
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
                   8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"),
                   10: ("deletionGracePeriodSeconds", "pint"), 11: ("labels", "map"), 12: ("annotations", "map"),
                   13: ("ownerReferences", "[]OwnerReference"), 14: ("finalizers", "strings")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "strings")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "bmap"), 4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bmap"), 3: ("type", "string"), 4: ("stringData", "map"),
               5: ("immutable", "bool")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "pint"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"), 5: ("dryRun", "strings")},
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    "Binding": {1: ("metadata", "ObjectMeta"), 2: ("target", "ObjectReference")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                        5: ("apiVersion", "string"), 6: ("resourceVersion", "string"), 7: ("fieldPath", "string")},
    "Scale": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ScaleSpec")},
    "ScaleSpec": {1: ("replicas", "pint")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta")},
    # what `kubectl create deployment|job|cronjob|service|pdb|priorityclass` generators send
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec")},
    "DeploymentSpec": {1: ("replicas", "pint"), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec"),
                       4: ("strategy", "DeploymentStrategy"), 5: ("minReadySeconds", "int"),
                       6: ("revisionHistoryLimit", "pint"), 7: ("paused", "bool"), 9: ("progressDeadlineSeconds", "pint")},
    "DeploymentStrategy": {1: ("type", "string")},
    "LabelSelector": {1: ("matchLabels", "map"), 2: ("matchExpressions", "[]LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "strings")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {2: ("containers", "[]Container"), 3: ("restartPolicy", "string"),
                4: ("terminationGracePeriodSeconds", "pint"), 6: ("dnsPolicy", "string"), 7: ("nodeSelector", "map"),
                8: ("serviceAccountName", "string"), 10: ("nodeName", "string"), 11: ("hostNetwork", "bool"),
                19: ("schedulerName", "string"), 20: ("initContainers", "[]Container"),
                24: ("priorityClassName", "string")},
    "Container": {1: ("name", "string"), 2: ("image", "string"), 3: ("command", "strings"), 4: ("args", "strings"),
                  5: ("workingDir", "string"), 6: ("ports", "[]ContainerPort"), 7: ("env", "[]EnvVar"),
                  8: ("resources", "ResourceRequirements"), 13: ("terminationMessagePath", "string"),
                  14: ("imagePullPolicy", "string"), 20: ("terminationMessagePolicy", "string")},
    "ContainerPort": {1: ("name", "string"), 2: ("hostPort", "int"), 3: ("containerPort", "int"), 4: ("protocol", "string"),
                      5: ("hostIP", "string")},
    "EnvVar": {1: ("name", "string"), 2: ("value", "string")},
    "ResourceRequirements": {1: ("limits", "qmap"), 2: ("requests", "qmap")},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "JobSpec": {1: ("parallelism", "pint"), 2: ("completions", "pint"), 3: ("activeDeadlineSeconds", "pint"),
                4: ("selector", "LabelSelector"), 5: ("manualSelector", "bool"), 6: ("template", "PodTemplateSpec"),
                7: ("backoffLimit", "pint"), 8: ("ttlSecondsAfterFinished", "pint"), 9: ("completionMode", "string"),
                10: ("suspend", "bool")},
    "CronJob": {1: ("metadata", "ObjectMeta"), 2: ("spec", "CronJobSpec")},
    "CronJobSpec": {1: ("schedule", "string"), 2: ("startingDeadlineSeconds", "pint"), 3: ("concurrencyPolicy", "string"),
                    4: ("suspend", "bool"), 5: ("jobTemplate", "JobTemplateSpec"),
                    6: ("successfulJobsHistoryLimit", "pint"), 7: ("failedJobsHistoryLimit", "pint"),
                    8: ("timeZone", "string")},
    "JobTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec")},
    "ServiceSpec": {1: ("ports", "[]ServicePort"), 2: ("selector", "map"), 3: ("clusterIP", "string"),
                    4: ("type", "string"), 5: ("externalIPs", "strings"), 7: ("sessionAffinity", "string"),
                    10: ("externalName", "string")},
    "ServicePort": {1: ("name", "string"), 2: ("protocol", "string"), 3: ("port", "int"), 4: ("targetPort", "intstr"),
                    5: ("nodePort", "int")},
    "PodDisruptionBudget": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodDisruptionBudgetSpec")},
    "PodDisruptionBudgetSpec": {1: ("minAvailable", "intstr"), 2: ("selector", "LabelSelector"),
                                3: ("maxUnavailable", "intstr")},
    "PriorityClass": {1: ("metadata", "ObjectMeta"), 2: ("value", "pint"), 3: ("globalDefault", "bool"),
                      4: ("description", "string"), 5: ("preemptionPolicy", "string")},
    "HorizontalPodAutoscaler": {1: ("metadata", "ObjectMeta"), 2: ("spec", "HorizontalPodAutoscalerSpec")},
    "HorizontalPodAutoscaler@autoscaling/v1": {1: ("metadata", "ObjectMeta"), 2: ("spec", "HPASpecV1")},
    "HPASpecV1": {1: ("scaleTargetRef", "CrossVersionObjectReference"), 2: ("minReplicas", "pint"),
                  3: ("maxReplicas", "pint"), 4: ("targetCPUUtilizationPercentage", "pint")},
    "HorizontalPodAutoscalerSpec": {1: ("scaleTargetRef", "CrossVersionObjectReference"), 2: ("minReplicas", "pint"),
                                    3: ("maxReplicas", "pint"), 4: ("metrics", "[]MetricSpec")},
    "CrossVersionObjectReference": {1: ("kind", "string"), 2: ("name", "string"), 3: ("apiVersion", "string")},
    "MetricSpec": {1: ("type", "string"), 4: ("resource", "ResourceMetricSource")},
    "ResourceMetricSource": {1: ("name", "string"), 2: ("target", "MetricTarget")},
    "MetricTarget": {1: ("type", "string"), 2: ("value", "quantity"), 3: ("averageValue", "quantity"),
                     4: ("averageUtilization", "pint")},
    "IntOrString": {1: ("type", "int"), 2: ("intVal", "int"), 3: ("strVal", "string")},
    "Quantity": {1: ("string", "string")},
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "rawbytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
}


#: kinds whose protobuf bodies we decode
TOP_LEVEL = frozenset({"Namespace", "ConfigMap", "Secret", "Eviction", "Binding", "Scale", "ServiceAccount", "Deployment",
                       "Job", "CronJob", "Service", "PodDisruptionBudget", "PriorityClass", "DeleteOptions",
                       "HorizontalPodAutoscaler"})


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
        if (wire == 2) != (typ not in ("int", "pint", "bool")):
            raise _Malformed(f"field {num} of {message} has wire type {wire}")
        if typ == "string":
            if value:   # Go emits empty non-pointer strings; JSON would have omitted them
                out[name] = value.decode()
        elif typ == "rawbytes":
            out[name] = value
        elif typ in ("int", "pint"):
            number = _signed(value) if wire == 0 else int.from_bytes(value, "little", signed=True)
            if number or typ == "pint":   # a zero non-pointer int is JSON's omitted field
                out[name] = number
        elif typ == "bool":
            if value:
                out[name] = True
        elif typ == "strings":
            out.setdefault(name, []).append(value.decode())
        elif typ == "map":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = v.decode()
        elif typ == "bmap":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = base64.b64encode(v).decode()
        elif typ == "intstr":
            v = _decode(value, "IntOrString")
            out[name] = v.get("strVal", "") if v.get("type") == 1 else v.get("intVal", 0)
        elif typ == "quantity":
            out[name] = _decode(value, "Quantity").get("string", "0")
        elif typ == "qmap":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = _decode(v, "Quantity").get("string", "0")
        elif typ == "time":
            t = _decode(value, "Time")
            if t.get("seconds", 0) <= 0:
                continue   # Go's zero time: JSON would say null
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
        if kind not in TOP_LEVEL:
            raise errors.unsupported_media_type(
                PROTOBUF, ["application/json", "application/yaml",
                           f"(protobuf only for {', '.join(sorted(TOP_LEVEL))}; "
                           f"got {kind or 'an unknown kind'})"])
        table = f"{kind}@{api_version}" if f"{kind}@{api_version}" in MESSAGES else kind
        obj = _decode(unknown.get("raw") or b"", table)
    except (_Malformed, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise errors.bad_request(f"malformed protobuf body: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
