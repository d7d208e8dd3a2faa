"""Per-kind defaulting and validation, with Kubernetes' rules and messages.

``default_<kind>(obj)`` fills defaults in place (what the API server would add: restartPolicy,
imagePullPolicy, strategy, protocol TCP, ...). ``validate_<kind>(obj, old)`` returns a list of
``FieldError`` (empty = valid); ``old`` is the stored object on update, ``None`` on create, so
immutability rules live here too. The REST layer turns a non-empty list into a 422 ``Invalid``
whose ``details.causes`` name every bad field.

Validators never trust types: a wrong type that slipped past the schema check gives a field error
(or a ``DecodeError`` for values Kubernetes rejects while decoding, e.g. a malformed quantity),
never an exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from clusterctl.api.errors import FieldError

# --- name rules --------------------------------------------------------------------------------

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(DNS1123_LABEL)
_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN)
_DNS1035_RE = re.compile(DNS1035_LABEL)
_QUALIFIED_NAME_PART = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(_QUALIFIED_NAME_PART)
_LABEL_VALUE_RE = re.compile(r"(" + _QUALIFIED_NAME_PART + r")?")
_ENV_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_IANA_SVC_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$")

MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '" + DNS1123_SUBDOMAIN + "')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '" + DNS1123_LABEL + "')")
MSG_DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '" + DNS1035_LABEL + "')")
MSG_QNAME = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
             "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
             "validation is '" + _QUALIFIED_NAME_PART + "')")
MSG_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(" + _QUALIFIED_NAME_PART + ")?')")
MSG_ENV = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
           "and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex "
           "used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")
MSG_PORT_RANGE = "must be between 1 and 65535, inclusive"


class DecodeError(Exception):
    """A value Kubernetes would refuse while decoding (400, not 422): e.g. a malformed quantity."""


def is_dns1123_subdomain(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(name))


def is_dns1123_label(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= 63 and bool(_LABEL_RE.fullmatch(name))


def _name_errors(field: str, name: Any, rule: str) -> list[FieldError]:
    if rule == "label":
        ok, msg, limit = is_dns1123_label(name), MSG_LABEL, 63
    elif rule == "dns1035":
        ok = isinstance(name, str) and len(name) <= 63 and bool(_DNS1035_RE.fullmatch(name))
        msg, limit = MSG_DNS1035, 63
    else:
        ok, msg, limit = is_dns1123_subdomain(name), MSG_SUBDOMAIN, 253
    if ok:
        return []
    if isinstance(name, str) and len(name) > limit:
        return [FieldError.invalid(field, name, f"must be no more than {limit} characters")]
    return [FieldError.invalid(field, name, msg)]


def _qualified_name_errors(field: str, key: Any) -> list[FieldError]:
    if not isinstance(key, str) or not key:
        return [FieldError.invalid(field, key, "name part must be non-empty")]
    prefix, _, name = key.rpartition("/")
    errs = []
    if "/" in key and not is_dns1123_subdomain(prefix):
        errs.append(FieldError.invalid(field, key, "prefix part " + MSG_SUBDOMAIN))
    if len(name) > 63:
        errs.append(FieldError.invalid(field, key, "name part must be no more than 63 characters"))
    elif not _QNAME_RE.fullmatch(name):
        errs.append(FieldError.invalid(field, key, MSG_QNAME))
    return errs


def validate_labels(labels: Any, field: str) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [FieldError.invalid(field, labels, "must be a map of string keys to string values")]
    errs: list[FieldError] = []
    for k, value in labels.items():
        errs += _qualified_name_errors(field, k)
        if not isinstance(value, str):
            errs.append(FieldError.invalid(f"{field}", value, "label values must be strings"))
        elif len(value) > 63:
            errs.append(FieldError.invalid(field, value, "must be no more than 63 characters"))
        elif not _LABEL_VALUE_RE.fullmatch(value):
            errs.append(FieldError.invalid(field, value, MSG_LABEL_VALUE))
    return errs


def validate_annotations(ann: Any, field: str) -> list[FieldError]:
    if ann is None:
        return []
    if not isinstance(ann, dict):
        return [FieldError.invalid(field, ann, "must be a map of string keys to string values")]
    errs: list[FieldError] = []
    total = 0
    for k, value in ann.items():
        errs += _qualified_name_errors(field, k)
        if not isinstance(value, str):
            errs.append(FieldError.invalid(field, value, "annotation values must be strings"))
        else:
            total += len(k) + len(value)
    if total > 256 * 1024:
        errs.append(FieldError("TooLong", field, "may not be more than 262144 bytes"))
    return errs


def validate_object_meta(obj: dict, *, name_rule: str = "subdomain", namespaced: bool = True) -> list[FieldError]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [FieldError.required("metadata")]
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name:
        errs.append(FieldError.required("metadata.name", "name or generateName is required"))
    else:
        errs += _name_errors("metadata.name", name, name_rule)
    if namespaced and meta.get("namespace") is not None:
        errs += _name_errors("metadata.namespace", meta.get("namespace"), "label")
    errs += validate_labels(meta.get("labels"), "metadata.labels")
    errs += validate_annotations(meta.get("annotations"), "metadata.annotations")
    for i, ref in enumerate(_list(meta.get("ownerReferences"))):
        f = f"metadata.ownerReferences[{i}]"
        if not isinstance(ref, dict):
            errs.append(FieldError.invalid(f, ref, "must be an object"))
            continue
        for req in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(req):
                errs.append(FieldError.required(f"{f}.{req}"))
    controllers = [r for r in _list(meta.get("ownerReferences")) if isinstance(r, dict) and r.get("controller")]
    if len(controllers) > 1:
        errs.append(FieldError.invalid("metadata.ownerReferences", controllers,
                                       "Only one reference can have Controller set to true"))
    for i, fin in enumerate(_list(meta.get("finalizers"))):
        errs += _qualified_name_errors(f"metadata.finalizers[{i}]", fin)
    return errs


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _int_field(errs: list, field: str, value: Any, *, minimum: int | None = 0, maximum: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        errs.append(FieldError.invalid(field, value, "must be an integer"))
        return
    if minimum is not None and value < minimum:
        errs.append(FieldError.invalid(field, value, f"must be greater than or equal to {minimum}"))
    if maximum is not None and value > maximum:
        errs.append(FieldError.invalid(field, value, f"must be less than or equal to {maximum}"))


def _immutable(errs: list, field: str, new: Any, old: Any) -> None:
    if new != old:
        errs.append(FieldError.invalid(field, new, "field is immutable"))


def check_quantity(field: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if not isinstance(value, str) or not _QUANTITY_RE.match(value):
        raise DecodeError(f"quantities must match the regular expression "
                          f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' ({field}: {value!r})")


# --- defaults ----------------------------------------------------------------------------------

def _image_pull_policy(image: Any) -> str:
    if not isinstance(image, str):
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_container(c: dict) -> None:
    c.setdefault("imagePullPolicy", _image_pull_policy(c.get("image")))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in _list(c.get("ports")):
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("path", "/")
                pr["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for c in _list(spec.get(key)):
            if isinstance(c, dict):
                _default_container(c)
    for vol in _list(spec.get("volumes")):
        if isinstance(vol, dict):
            for src in ("configMap", "secret"):
                if isinstance(vol.get(src), dict):
                    vol[src].setdefault("defaultMode", 420)
            if not any(k for k in vol if k != "name"):
                vol["emptyDir"] = {}


def _default_template(obj: dict) -> None:
    tpl = _dict(_dict(obj.get("spec")).get("template"))
    default_pod_spec(tpl.get("spec"))


def default_pod(obj: dict) -> None:
    spec = obj.get("spec")
    default_pod_spec(spec)
    if isinstance(spec, dict):
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec.get("serviceAccountName"))
        spec.setdefault("priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        if isinstance(tolerations, list):
            have = {(t.get("key"), t.get("effect")) for t in tolerations if isinstance(t, dict)}
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
                if (key, "NoExecute") not in have:
                    tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                        "tolerationSeconds": 300})


def default_namespace(obj: dict) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    if isinstance(labels, dict) and isinstance(meta.get("name"), str):
        labels["kubernetes.io/metadata.name"] = meta["name"]


def default_node(obj: dict) -> None:
    obj.setdefault("spec", {})


def default_service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    if spec.get("type") == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for p in _list(spec.get("ports")):
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if "targetPort" not in p and p.get("port") is not None:
                p["targetPort"] = p["port"]


def default_secret(obj: dict) -> None:
    obj.setdefault("type", "Opaque")


def default_event(obj: dict) -> None:
    obj.setdefault("type", "Normal")
    obj.setdefault("count", 1)
    obj.setdefault("source", {})


def default_endpointslice(obj: dict) -> None:
    for p in _list(obj.get("ports")):
        if isinstance(p, dict):
            p.setdefault("name", "")
            p.setdefault("protocol", "TCP")
    for e in _list(obj.get("endpoints")):
        if isinstance(e, dict):
            e.setdefault("conditions", {})


def _default_replicas(spec: dict) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)


def default_deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    _default_replicas(spec)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
    _default_template(obj)


def default_replicaset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
    _default_template(obj)


def default_daemonset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", 1)
                ru.setdefault("maxSurge", 0)
    _default_template(obj)


def default_statefulset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    _default_replicas(spec)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("partition", 0)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _default_template(obj)


def default_job(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", spec.get("manualSelector") or None)
    if spec.get("manualSelector") is None:
        spec.pop("manualSelector", None)
    meta = _dict(obj.get("metadata"))
    uid, name = meta.get("uid"), meta.get("name")
    tpl = spec.setdefault("template", {})
    if not spec.get("manualSelector") and uid and isinstance(tpl, dict):
        generated = {"batch.kubernetes.io/controller-uid": uid}
        if "selector" not in spec:
            spec["selector"] = {"matchLabels": generated}
        tmeta = tpl.setdefault("metadata", {})
        if isinstance(tmeta, dict):
            labels = tmeta.setdefault("labels", {})
            if isinstance(labels, dict):
                labels.setdefault("batch.kubernetes.io/controller-uid", uid)
                labels.setdefault("controller-uid", uid)
                if name:
                    labels.setdefault("batch.kubernetes.io/job-name", name)
                    labels.setdefault("job-name", name)
    if isinstance(tpl, dict):
        default_pod_spec(tpl.get("spec"))


def default_cronjob(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = _dict(_dict(spec.get("jobTemplate")).get("spec"))
    default_pod_spec(_dict(jt.get("template")).get("spec"))


def default_hpa(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 80}}}]


def default_priorityclass(obj: dict) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


# --- validators --------------------------------------------------------------------------------

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]


def _validate_ports(errs: list, field: str, ports: Any) -> None:
    names: set[str] = set()
    seen: set[tuple] = set()
    for i, p in enumerate(_list(ports)):
        f = f"{field}[{i}]"
        if not isinstance(p, dict):
            errs.append(FieldError.invalid(f, p, "must be an object"))
            continue
        cp = p.get("containerPort")
        if cp is None:
            errs.append(FieldError.required(f"{f}.containerPort"))
        elif isinstance(cp, bool) or not isinstance(cp, int) or not 1 <= cp <= 65535:
            errs.append(FieldError.invalid(f"{f}.containerPort", cp, MSG_PORT_RANGE))
        hp = p.get("hostPort")
        if hp is not None and (isinstance(hp, bool) or not isinstance(hp, int) or not 0 <= hp <= 65535):
            errs.append(FieldError.invalid(f"{f}.hostPort", hp, MSG_PORT_RANGE))
        proto = p.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            errs.append(FieldError.not_supported(f"{f}.protocol", proto, PROTOCOLS))
        name = p.get("name")
        if name:
            if not isinstance(name, str) or len(name) > 15 or not _IANA_SVC_RE.fullmatch(name) or "--" in name \
                    or not re.search("[a-z]", name):
                errs.append(FieldError.invalid(f"{f}.name", name, "must be no more than 15 characters and contain "
                                               "only lowercase alphanumerics and '-', with at least one letter"))
            elif name in names:
                errs.append(FieldError.duplicate(f"{f}.name", name))
            else:
                names.add(name)
        key = (cp, proto)
        if key in seen and cp is not None:
            pass  # Kubernetes only warns on duplicate containerPort/protocol pairs
        seen.add(key)


def _validate_resources(field: str, res: Any) -> None:
    for section in ("limits", "requests"):
        for rname, qty in _dict(_dict(res).get(section)).items():
            check_quantity(f"{field}.{section}[{rname}]", qty)


def _validate_container(errs: list, field: str, c: Any, volume_names: set[str]) -> None:
    if not isinstance(c, dict):
        errs.append(FieldError.invalid(field, c, "must be an object"))
        return
    name = c.get("name")
    if not name:
        errs.append(FieldError.required(f"{field}.name"))
    else:
        errs.extend(_name_errors(f"{field}.name", name, "label"))
    if not c.get("image"):
        errs.append(FieldError.required(f"{field}.image"))
    elif not isinstance(c["image"], str):
        errs.append(FieldError.invalid(f"{field}.image", c["image"], "must be a string"))
    pp = c.get("imagePullPolicy")
    if pp is not None and pp not in PULL_POLICIES:
        errs.append(FieldError.not_supported(f"{field}.imagePullPolicy", pp, PULL_POLICIES))
    _validate_ports(errs, f"{field}.ports", c.get("ports"))
    for i, env in enumerate(_list(c.get("env"))):
        f = f"{field}.env[{i}]"
        if not isinstance(env, dict) or not env.get("name"):
            errs.append(FieldError.required(f"{f}.name"))
        elif not isinstance(env["name"], str) or not _ENV_RE.fullmatch(env["name"]):
            errs.append(FieldError.invalid(f"{f}.name", env["name"], MSG_ENV))
    mounts: set[str] = set()
    for i, m in enumerate(_list(c.get("volumeMounts"))):
        f = f"{field}.volumeMounts[{i}]"
        if not isinstance(m, dict):
            errs.append(FieldError.invalid(f, m, "must be an object"))
            continue
        if not m.get("name"):
            errs.append(FieldError.required(f"{f}.name"))
        elif m["name"] not in volume_names:
            errs.append(FieldError("NotFound", f"{f}.name", "", m["name"], True))
        mp = m.get("mountPath")
        if not mp:
            errs.append(FieldError.required(f"{f}.mountPath"))
        elif mp in mounts:
            errs.append(FieldError.invalid(f"{f}.mountPath", mp, "must be unique"))
        else:
            mounts.add(mp)
    _validate_resources(f"{field}.resources", c.get("resources"))
    if c.get("command") is not None and not isinstance(c["command"], list):
        errs.append(FieldError.invalid(f"{field}.command", c["command"], "must be a list of strings"))


def validate_pod_spec(spec: Any, field: str, *, allowed_restart: list[str] | None = None) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(spec, dict):
        return [FieldError.required(field)]
    volume_names: set[str] = set()
    for i, vol in enumerate(_list(spec.get("volumes"))):
        f = f"{field}.volumes[{i}]"
        name = _dict(vol).get("name")
        if not name:
            errs.append(FieldError.required(f"{f}.name"))
        elif name in volume_names:
            errs.append(FieldError.duplicate(f"{f}.name", name))
        else:
            errs.extend(_name_errors(f"{f}.name", name, "label"))
            volume_names.add(name)
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        errs.append(FieldError.required(f"{field}.containers"))
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(_list(spec.get(key))):
            _validate_container(errs, f"{field}.{key}[{i}]", c, volume_names)
            name = _dict(c).get("name")
            if name:
                if name in names:
                    errs.append(FieldError.duplicate(f"{field}.{key}[{i}].name", name))
                names.add(name)
    rp = spec.get("restartPolicy")
    allowed = allowed_restart or RESTART_POLICIES
    if rp is None and allowed_restart:
        errs.append(FieldError.required(f"{field}.restartPolicy", "valid values: " + ", ".join(f'"{a}"' for a in allowed)))
    elif rp is not None and rp not in allowed:
        errs.append(FieldError.not_supported(f"{field}.restartPolicy", rp, allowed))
    dp = spec.get("dnsPolicy")
    if dp is not None and dp not in DNS_POLICIES:
        errs.append(FieldError.not_supported(f"{field}.dnsPolicy", dp, DNS_POLICIES))
    _int_field(errs, f"{field}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"))
    _int_field(errs, f"{field}.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"), minimum=1)
    errs += validate_labels(spec.get("nodeSelector"), f"{field}.nodeSelector")
    if spec.get("nodeName") is not None:
        errs += _name_errors(f"{field}.nodeName", spec["nodeName"], "subdomain")
    return errs


def _pod_update_errors(obj: dict, old: dict) -> list[FieldError]:
    """Kubernetes lets a pod update change only images, activeDeadlineSeconds and tolerations."""
    def neutral(spec: Any) -> Any:
        if not isinstance(spec, dict):
            return spec
        s = dict(spec)
        for key in ("containers", "initContainers"):
            s[key] = [{**c, "image": None} if isinstance(c, dict) else c for c in _list(s.get(key))]
        s.pop("activeDeadlineSeconds", None)
        s.pop("tolerations", None)
        return s
    if neutral(obj.get("spec")) != neutral(old.get("spec")):
        return [FieldError.forbidden("spec", "pod updates may not change fields other than "
                                     "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                     "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                                     "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
                                     "set to 1 if it was previously negative)")]
    return []


def validate_pod(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    errs += validate_pod_spec(obj.get("spec"), "spec")
    if old is not None and not errs:
        errs += _pod_update_errors(obj, old)
    return errs


def validate_namespace(obj: dict, old: dict | None) -> list[FieldError]:
    return validate_object_meta(obj, name_rule="label", namespaced=False)


def validate_node(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj, namespaced=False)
    spec = _dict(obj.get("spec"))
    if old is not None:
        old_cidr = _dict(old.get("spec")).get("podCIDR")
        if old_cidr and spec.get("podCIDR") != old_cidr:
            errs.append(FieldError.forbidden("spec.podCIDR", "podCIDR may only be set once"))
    for i, t in enumerate(_list(spec.get("taints"))):
        if not _dict(t).get("key"):
            errs.append(FieldError.required(f"spec.taints[{i}].key"))
        eff = _dict(t).get("effect")
        if eff not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(FieldError.not_supported(f"spec.taints[{i}].effect", eff,
                                                 ["NoExecute", "NoSchedule", "PreferNoSchedule"]))
    return errs


def validate_generic(obj: dict, old: dict | None) -> list[FieldError]:
    return validate_object_meta(obj)


def validate_configmap(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    total = 0
    for section in ("data", "binaryData"):
        data = obj.get(section)
        if data is None:
            continue
        if not isinstance(data, dict):
            errs.append(FieldError.invalid(section, data, "must be a map"))
            continue
        for k, val in data.items():
            if not _CONFIG_KEY_RE.fullmatch(k) or len(k) > 253:
                errs.append(FieldError.invalid(section, k, "a valid config key must consist of alphanumeric "
                                               "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                                               "or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
            if not isinstance(val, str):
                errs.append(FieldError.invalid(f"{section}[{k}]", val, "must be a string"))
            else:
                total += len(val)
    if total > 1024 * 1024:
        errs.append(FieldError("TooLong", "", "ConfigMap data must be no more than 1048576 bytes"))
    return errs


def validate_secret(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        errs.append(FieldError.invalid("data", data, "must be a map"))
    for k, val in _dict(data).items():
        if not _CONFIG_KEY_RE.fullmatch(k):
            errs.append(FieldError.invalid("data", k, "a valid config key must consist of alphanumeric "
                                           "characters, '-', '_' or '.'"))
        if not isinstance(val, str):
            raise DecodeError(f"illegal base64 data for data[{k}]: not a string")
        try:
            base64.b64decode(val, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"illegal base64 data at input for data[{k}]") from exc
    if old is not None and old.get("immutable") and (obj.get("data") != old.get("data")):
        errs.append(FieldError.forbidden("data", "field is immutable when `immutable` is set"))
    return errs


def validate_event(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    inv = obj.get("involvedObject")
    if not isinstance(inv, dict):
        errs.append(FieldError.required("involvedObject"))
    ns = _dict(obj.get("metadata")).get("namespace")
    if isinstance(inv, dict) and inv.get("namespace") and ns and inv["namespace"] != ns:
        errs.append(FieldError.invalid("involvedObject.namespace", inv["namespace"],
                                       "does not match event.namespace"))
    t = obj.get("type")
    if t not in (None, "Normal", "Warning"):
        errs.append(FieldError.not_supported("type", t, ["Normal", "Warning"]))
    return errs


def validate_endpointslice(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    at = obj.get("addressType")
    if at is None:
        errs.append(FieldError.required("addressType"))
    elif at not in ("IPv4", "IPv6", "FQDN"):
        errs.append(FieldError.not_supported("addressType", at, ["FQDN", "IPv4", "IPv6"]))
    for i, e in enumerate(_list(obj.get("endpoints"))):
        if not _list(_dict(e).get("addresses")):
            errs.append(FieldError.required(f"endpoints[{i}].addresses"))
    for i, p in enumerate(_list(obj.get("ports"))):
        port = _dict(p).get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            errs.append(FieldError.invalid(f"ports[{i}].port", port, MSG_PORT_RANGE))
    return errs


SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def validate_service(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj, name_rule="dns1035")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [FieldError.required("spec")]
    stype = spec.get("type", "ClusterIP")
    if stype not in SERVICE_TYPES:
        errs.append(FieldError.not_supported("spec.type", stype, SERVICE_TYPES))
    ports = spec.get("ports")
    headless = spec.get("clusterIP") == "None"
    if stype == "ExternalName":
        if not spec.get("externalName"):
            errs.append(FieldError.required("spec.externalName"))
    elif not ports and not headless:
        errs.append(FieldError.required("spec.ports"))
    names: set = set()
    pairs: set = set()
    plist = _list(ports)
    for i, p in enumerate(plist):
        f = f"spec.ports[{i}]"
        if not isinstance(p, dict):
            errs.append(FieldError.invalid(f, p, "must be an object"))
            continue
        name = p.get("name")
        if len(plist) > 1 and not name:
            errs.append(FieldError.required(f"{f}.name"))
        elif name:
            if name in names:
                errs.append(FieldError.duplicate(f"{f}.name", name))
            else:
                errs.extend(_name_errors(f"{f}.name", name, "label"))
            names.add(name)
        port = p.get("port")
        if port is None:
            errs.append(FieldError.required(f"{f}.port"))
        elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            errs.append(FieldError.invalid(f"{f}.port", port, MSG_PORT_RANGE))
        proto = p.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            errs.append(FieldError.not_supported(f"{f}.protocol", proto, PROTOCOLS))
        if (port, proto) in pairs:
            errs.append(FieldError.duplicate(f, {"port": port, "protocol": proto}))
        pairs.add((port, proto))
        tp = p.get("targetPort")
        if isinstance(tp, int) and not isinstance(tp, bool):
            if not 1 <= tp <= 65535:
                errs.append(FieldError.invalid(f"{f}.targetPort", tp, MSG_PORT_RANGE))
        elif isinstance(tp, str):
            if not (len(tp) <= 15 and _IANA_SVC_RE.fullmatch(tp)) and not tp.isdigit():
                errs.append(FieldError.invalid(f"{f}.targetPort", tp, "must contain only lowercase alphanumerics "
                                               "and '-', at most 15 characters"))
        elif tp is not None:
            errs.append(FieldError.invalid(f"{f}.targetPort", tp, "must be an integer or a string"))
        np_ = p.get("nodePort")
        if np_ is not None:
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(FieldError.forbidden(f"{f}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            elif isinstance(np_, bool) or not isinstance(np_, int) or not 1 <= np_ <= 65535:
                errs.append(FieldError.invalid(f"{f}.nodePort", np_, MSG_PORT_RANGE))
    errs += validate_labels(spec.get("selector"), "spec.selector")
    if old is not None:
        old_ip = _dict(old.get("spec")).get("clusterIP")
        new_ip = spec.get("clusterIP")
        if old_ip and new_ip and new_ip != old_ip and stype != "ExternalName":
            errs.append(FieldError.invalid("spec.clusterIPs[0]", new_ip, "may not change once set"))
    return errs


def _selector_errors(errs: list, obj: dict, old: dict | None, *, kind: str, template_required: bool = True) -> None:
    from clusterctl.api.selectors import from_label_selector_object
    spec = _dict(obj.get("spec"))
    selector = spec.get("selector")
    if selector is None:
        errs.append(FieldError.required("spec.selector"))
        return
    if not isinstance(selector, dict):
        errs.append(FieldError.invalid("spec.selector", selector, "must be a label selector"))
        return
    errs += validate_labels(selector.get("matchLabels"), "spec.selector.matchLabels")
    try:
        sel = from_label_selector_object(selector)
    except (ValueError, AttributeError, TypeError) as exc:
        errs.append(FieldError.invalid("spec.selector.matchExpressions", selector.get("matchExpressions"), str(exc)))
        return
    if sel.empty:
        errs.append(FieldError.invalid("spec.selector", selector, f"empty selector is invalid for {kind}"))
        return
    if template_required:
        labels = _dict(_dict(_dict(spec.get("template")).get("metadata")).get("labels"))
        if not sel.matches(labels):
            errs.append(FieldError.invalid("spec.template.metadata.labels", labels,
                                           "`selector` does not match template `labels`"))
    if old is not None:
        _immutable(errs, "spec.selector", selector, _dict(old.get("spec")).get("selector"))


def _template_errors(errs: list, obj: dict, *, allowed_restart: list[str] | None = None, prefix: str = "spec.template") -> None:
    tpl = _dict(obj.get("spec")).get("template") if prefix == "spec.template" else None
    if tpl is None and prefix == "spec.template":
        errs.append(FieldError.required(prefix))
        return
    tpl = _dict(tpl)
    errs += validate_labels(_dict(tpl.get("metadata")).get("labels"), f"{prefix}.metadata.labels")
    errs += validate_pod_spec(tpl.get("spec"), f"{prefix}.spec", allowed_restart=allowed_restart)


def _workload(obj: dict, old: dict | None, kind: str, *, replicas: bool = True) -> list[FieldError]:
    errs = validate_object_meta(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [FieldError.required("spec")]
    if replicas:
        _int_field(errs, "spec.replicas", spec.get("replicas"))
    _int_field(errs, "spec.minReadySeconds", spec.get("minReadySeconds"))
    _int_field(errs, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    _selector_errors(errs, obj, old, kind=kind)
    _template_errors(errs, obj, allowed_restart=["Always"])
    return errs


def validate_deployment(obj: dict, old: dict | None) -> list[FieldError]:
    errs = _workload(obj, old, "deployment")
    strategy = _dict(_dict(obj.get("spec")).get("strategy"))
    st = strategy.get("type")
    if st is not None and st not in ("Recreate", "RollingUpdate"):
        errs.append(FieldError.not_supported("spec.strategy.type", st, ["Recreate", "RollingUpdate"]))
    if st == "Recreate" and strategy.get("rollingUpdate"):
        errs.append(FieldError.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"))
    _int_field(errs, "spec.progressDeadlineSeconds", _dict(obj.get("spec")).get("progressDeadlineSeconds"), minimum=1)
    return errs


def validate_replicaset(obj: dict, old: dict | None) -> list[FieldError]:
    return _workload(obj, old, "replicaset")


def validate_daemonset(obj: dict, old: dict | None) -> list[FieldError]:
    return _workload(obj, old, "daemonset", replicas=False)


def validate_statefulset(obj: dict, old: dict | None) -> list[FieldError]:
    errs = _workload(obj, old, "statefulset")
    spec = _dict(obj.get("spec"))
    pmp = spec.get("podManagementPolicy")
    if pmp is not None and pmp not in ("OrderedReady", "Parallel"):
        errs.append(FieldError.not_supported("spec.podManagementPolicy", pmp, ["OrderedReady", "Parallel"]))
    if old is not None:
        ospec = _dict(old.get("spec"))
        for f in ("serviceName", "podManagementPolicy", "volumeClaimTemplates"):
            if spec.get(f) != ospec.get(f):
                errs.append(FieldError.forbidden("spec", "updates to statefulset spec for fields other than "
                                                 "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                                 "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
                                                 "are forbidden"))
                break
    return errs


def validate_job(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [FieldError.required("spec")]
    for f in ("parallelism", "completions", "backoffLimit"):
        _int_field(errs, f"spec.{f}", spec.get(f))
    _int_field(errs, "spec.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"), minimum=1)
    _selector_errors(errs, obj, old, kind="job")
    _template_errors(errs, obj, allowed_restart=["OnFailure", "Never"])
    if old is not None:
        ospec = _dict(old.get("spec"))
        if spec.get("completions") != ospec.get("completions"):
            errs.append(FieldError.invalid("spec.completions", spec.get("completions"), "field is immutable"))
        if spec.get("template") != ospec.get("template") and not spec.get("suspend"):
            errs.append(FieldError.invalid("spec.template", spec.get("template"), "field is immutable"))
    return errs


def validate_cronjob(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [FieldError.required("spec")]
    schedule = spec.get("schedule")
    if not schedule:
        errs.append(FieldError.required("spec.schedule"))
    else:
        try:
            from croniter import croniter
            if not isinstance(schedule, str):
                raise ValueError("not a string")
            text = schedule
            for macro, expansion in (("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
                                     ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"),
                                     ("@annually", "0 0 1 1 *")):
                text = text.replace(macro, expansion)
            if not croniter.is_valid(text):
                raise ValueError("invalid schedule")
        except (ValueError, TypeError, KeyError) as exc:
            errs.append(FieldError.invalid("spec.schedule", schedule, f"unparseable schedule: {exc}"))
    cp = spec.get("concurrencyPolicy")
    if cp is not None and cp not in ("Allow", "Forbid", "Replace"):
        errs.append(FieldError.not_supported("spec.concurrencyPolicy", cp, ["Allow", "Forbid", "Replace"]))
    jt = spec.get("jobTemplate")
    if not isinstance(jt, dict):
        errs.append(FieldError.required("spec.jobTemplate"))
    else:
        tpl = _dict(_dict(jt.get("spec")).get("template"))
        errs += validate_pod_spec(tpl.get("spec"), "spec.jobTemplate.spec.template.spec",
                                  allowed_restart=["OnFailure", "Never"])
    return errs


def validate_hpa(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    spec = _dict(obj.get("spec"))
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, dict):
        errs.append(FieldError.required("spec.scaleTargetRef"))
    else:
        for f in ("kind", "name"):
            if not ref.get(f):
                errs.append(FieldError.required(f"spec.scaleTargetRef.{f}"))
    mx, mn = spec.get("maxReplicas"), spec.get("minReplicas")
    if mx is None:
        errs.append(FieldError.required("spec.maxReplicas"))
    else:
        _int_field(errs, "spec.maxReplicas", mx, minimum=1)
    _int_field(errs, "spec.minReplicas", mn, minimum=1)
    if isinstance(mx, int) and isinstance(mn, int) and mn > mx:
        errs.append(FieldError.invalid("spec.maxReplicas", mx, "must be greater than or equal to `minReplicas`"))
    return errs


def validate_pdb(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj)
    spec = _dict(obj.get("spec"))
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(FieldError.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for f in ("minAvailable", "maxUnavailable"):
        val = spec.get(f)
        if isinstance(val, int) and not isinstance(val, bool):
            _int_field(errs, f"spec.{f}", val)
        elif isinstance(val, str) and not re.fullmatch(r"\d+%", val):
            errs.append(FieldError.invalid(f"spec.{f}", val, "a valid percent string must be a numeric string "
                                           "followed by an ending '%' (e.g. '1%',  or '93%')"))
    return errs


def validate_priorityclass(obj: dict, old: dict | None) -> list[FieldError]:
    errs = validate_object_meta(obj, namespaced=False)
    value = obj.get("value")
    if value is None:
        errs.append(FieldError.required("value"))
    else:
        _int_field(errs, "value", value, minimum=None, maximum=1_000_000_000)
    if old is not None and value != old.get("value"):
        errs.append(FieldError.forbidden("value", "may not be changed in an update."))
    return errs
