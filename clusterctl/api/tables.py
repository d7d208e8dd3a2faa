"""Server-side Table output: the columns ``kubectl get`` prints, computed by the API server.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints whatever
``meta.k8s.io/v1`` ``Table`` it gets back, so the columns and cell values here are what a person
sees. They follow kube-apiserver's printers (``pkg/printers/internalversion/printers.go`` of
Kubernetes 1.32): the same column names, priorities (1 = only with ``-o wide``) and cell logic
(pod STATUS from phase, init containers and container states; RESTARTS "3 (5m ago)"; node
STATUS "Ready,SchedulingDisabled"; service EXTERNAL-IP and PORT(S)...). Column descriptions come
from the OpenAPI definitions we serve, as Kubernetes takes them from its Swagger docs.

Like kube-apiserver, the server should call ``to_table(..., wide=True)``: kubectl filters the
priority-1 columns itself unless ``-o wide`` is given, and cells are matched to columns by index.
``wide=False`` returns only the priority-0 columns and cells (for callers that print directly).

``human_duration`` is Kubernetes' ``duration.HumanDuration`` ("5s", "3m2s", "10m", "2d3h"), for
the CLI and TUI to print ages the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from clusterctl.api.openapi_schemas import definitions

NONE = "<none>"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
CORE = "io.k8s.api.core.v1"


# --------------------------------------------------------------------------- durations


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration: ~2-3 significant figures of a duration."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes them (``...Z`` or with an offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _since(value: Any, now: datetime) -> str:
    """translateTimestampSince: "<unknown>" without a timestamp, else its human age."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


# --------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _doc(definition: str, field: str) -> str:
    """The OpenAPI description of a field (what Kubernetes' SwaggerDoc() returns)."""
    schema = definitions().get(definition, {})
    return schema.get("properties", {}).get(field, {}).get("description", "")


def _name_column() -> Column:
    return Column("Name", format="name", description=_doc(f"{META}.ObjectMeta", "name"))


def _age_column() -> Column:
    return Column("Age", description=_doc(f"{META}.ObjectMeta", "creationTimestamp"))


def _template_columns(selector: bool = True) -> list[Column]:
    columns = [
        Column("Containers", priority=1, description="Names of each container in the template."),
        Column("Images", priority=1, description="Images referenced by each container in the template."),
    ]
    if selector:
        columns.append(Column("Selector", priority=1, description="The label selector of the template's pods."))
    return columns


# --------------------------------------------------------------------------- shared cell helpers


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
        if obj is None:
            return default
    return obj


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: sorted "k=v,k2=v2", or "<none>"."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector: requirements sorted by key, or "<none>"."""
    if not isinstance(selector, dict):
        return NONE
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = ",".join(sorted(set(expression.get("values") or [])))
        if operator == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif operator == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            return "<error>"
    text = ",".join(r for _, r in sorted(requirements, key=lambda r: r[0]))
    return text or NONE


def _container_cells(pod_spec: dict | None) -> list[str]:
    containers = (pod_spec or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bool_ptr(value: Any) -> str:
    """printBoolPtr: "True"/"False", or "<unset>"."""
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _more(items: list[str], count: int, limit: int) -> str:
    text = ",".join(items)
    return f"{text} + {count - limit} more..." if count > limit else text


# --------------------------------------------------------------------------- pods


@dataclass(frozen=True)
class PodSummary:
    """What ``kubectl get pods`` shows about one pod's containers."""

    reason: str
    ready: int
    total: int
    restarts: int
    last_restart: datetime | None


def pod_summary(pod: dict) -> PodSummary:
    """kubectl's pod STATUS, READY and RESTARTS, as kube-apiserver's printPod computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}

    def restartable(name: str) -> bool:
        # a sidecar: an init container with restartPolicy Always runs beside the containers
        return (init_specs.get(name) or {}).get("restartPolicy") == "Always"

    total = len(spec.get("containers") or []) + sum(1 for n in init_specs if restartable(n))
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    def later(a: datetime | None, b: datetime | None) -> datetime | None:
        return b if a is None or (b is not None and b > a) else a

    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        count = _int(container.get("restartCount"))
        finished = parse_time(_get(container, "lastState", "terminated", "finishedAt"))
        restarts += count
        last_restart = later(last_restart, finished)
        name = container.get("name", "")
        if restartable(name):
            sidecar_restarts += count
            last_sidecar_restart = later(last_sidecar_restart, finished)
        terminated = _get(container, "state", "terminated")
        waiting = _get(container, "state", "waiting")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if restartable(name) and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions)
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += _int(container.get("restartCount"))
            last_restart = later(last_restart, parse_time(_get(container, "lastState", "terminated", "finishedAt")))
            waiting = _get(container, "state", "waiting")
            terminated = _get(container, "state", "terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if _int(terminated.get("signal")):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif container.get("ready") and _get(container, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            reason = "Running" if pod_ready else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return PodSummary(reason, ready, total, restarts, last_restart)


def _pod_row(pod: dict, now: datetime) -> list:
    summary = pod_summary(pod)
    restarts = str(summary.restarts)
    if summary.restarts and summary.last_restart is not None:
        restarts += f" ({human_duration((now - summary.last_restart).total_seconds())} ago)"
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or NONE
    gates = spec.get("readinessGates") or []
    readiness = NONE
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        readiness = f"{true}/{len(gates)}"
    return [
        _get(pod, "metadata", "name", default=""),
        f"{summary.ready}/{summary.total}",
        summary.reason,
        restarts,
        _since(_get(pod, "metadata", "creationTimestamp"), now),
        pod_ip,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        readiness,
    ]


def _pod_conditions(pod: dict) -> list[dict] | None:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


# --------------------------------------------------------------------------- workloads


def _deployment_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        _get(obj, "metadata", "name", default=""),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'))}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        *_container_cells(_get(spec, "template", "spec")),
        format_label_selector(spec.get("selector")),
    ]


def _replicaset_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        _get(obj, "metadata", "name", default=""),
        _int(spec.get("replicas")),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        *_container_cells(_get(spec, "template", "spec")),
        format_label_selector(spec.get("selector")),
    ]


def _daemonset_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        _get(obj, "metadata", "name", default=""),
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        format_labels(_get(spec, "template", "spec", "nodeSelector")),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        *_container_cells(_get(spec, "template", "spec")),
        format_label_selector(spec.get("selector")),
    ]


def _statefulset_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        _get(obj, "metadata", "name", default=""),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'))}",
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        *_container_cells(_get(spec, "template", "spec")),
    ]


def _has_condition(obj: dict, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in _get(obj, "status", "conditions") or []
    )


def job_status(job: dict) -> str:
    """The STATUS column of ``kubectl get jobs`` (Kubernetes 1.31+)."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if _get(job, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    if _has_condition(job, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def _job_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec.get('completions'))}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((end or now) - start).total_seconds())
    return [
        _get(obj, "metadata", "name", default=""),
        job_status(obj),
        completions,
        duration,
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        *_container_cells(_get(spec, "template", "spec")),
        format_label_selector(spec.get("selector")),
    ]


def _cronjob_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = _get(spec, "jobTemplate", "spec") or {}
    return [
        _get(obj, "metadata", "name", default=""),
        spec.get("schedule", ""),
        spec.get("timeZone") or NONE,
        _bool_ptr(spec.get("suspend")),
        len(status.get("active") or []),
        _since(last, now) if last else NONE,
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        *_container_cells(_get(job_spec, "template", "spec")),
        format_label_selector(job_spec.get("selector")),
    ]


# --------------------------------------------------------------------------- services & networking


def _load_balancer_ips(service: dict, wide: bool) -> str:
    ingress = _get(service, "status", "loadBalancer", "ingress") or []
    result = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress if i.get("ip") or i.get("hostname"))
    if not wide and len(result) > 16:
        result = result[:13] + "..."
    return result


def service_external_ip(service: dict, wide: bool = True) -> str:
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if kind == "LoadBalancer":
        lb = _load_balancer_ips(service, wide)
        if external:
            return ",".join([*(lb.split(",") if lb else []), *external])
        return lb or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(ports: list | None) -> str:
    pieces = []
    for port in ports or []:
        protocol = port.get("protocol") or "TCP"
        if _int(port.get("nodePort")) > 0:
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or NONE


def _service_row(obj: dict, now: datetime) -> list:
    spec = obj.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        _get(obj, "metadata", "name", default=""),
        spec.get("type") or "ClusterIP",
        cluster_ips[0] if cluster_ips else NONE,
        service_external_ip(obj),
        service_ports(spec.get("ports")),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        format_labels(spec.get("selector")),
    ]


def format_endpoints(endpoints: dict) -> str:
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    count, limit = 0, 3
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:
            count += len(addresses)
            shown.extend(a.get("ip", "") for a in addresses[: max(0, limit - len(shown))])
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    break
                ip = address.get("ip", "")
                host = f"[{ip}]" if ":" in ip else ip
                shown.append(f"{host}:{port.get('port')}")
    return _more(shown, count, limit)


def _endpoints_row(obj: dict, now: datetime) -> list:
    return [_get(obj, "metadata", "name", default=""), format_endpoints(obj),
            _since(_get(obj, "metadata", "creationTimestamp"), now)]


def _list_or_unset(items: list[str], count: int, limit: int) -> str:
    text = _more(items, count, limit)
    return text or "<unset>"


def _endpointslice_row(obj: dict, now: datetime) -> list:
    ports = obj.get("ports") or []
    port_cells = []
    for port in ports[:3]:
        if port.get("port") is not None:
            port_cells.append(str(port["port"]))
        elif port.get("name") is not None:
            port_cells.append(port["name"])
        else:
            port_cells.append("*")
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _get(obj, "metadata", "name", default=""),
        obj.get("addressType", ""),
        _list_or_unset(port_cells, len(ports), 3),
        _list_or_unset(addresses[:3], len(addresses), 3),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
    ]


# --------------------------------------------------------------------------- cluster objects


def node_status(node: dict) -> str:
    ready = [c for c in _get(node, "status", "conditions") or [] if c.get("type") == "Ready"]
    status = []
    if ready:
        status.append("Ready" if ready[-1].get("status") == "True" else "NotReady")
    else:
        status.append("Unknown")
    if _get(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(node: dict) -> str:
    roles = set()
    for key, value in (_get(node, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _node_address(node: dict, kind: str) -> str:
    for address in _get(node, "status", "addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return NONE


def _node_row(obj: dict, now: datetime) -> list:
    info = _get(obj, "status", "nodeInfo") or {}
    return [
        _get(obj, "metadata", "name", default=""),
        node_status(obj),
        node_roles(obj),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _event_source(event: dict) -> str:
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_row(obj: dict, now: datetime) -> list:
    first = obj.get("firstTimestamp")
    first_seen = _since(first, now) if first else _since(obj.get("eventTime"), now)
    last = obj.get("lastTimestamp")
    last_seen = _since(last, now) if last else first_seen
    count = _int(obj.get("count"))
    series = obj.get("series")
    if series:
        last_seen = _since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last_seen,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        _event_source(obj),
        (obj.get("message") or "").strip(),
        first_seen,
        count,
        _get(obj, "metadata", "name", default=""),
    ]


def _int_or_string(value: Any) -> str:
    return "N/A" if value is None else str(value)


def format_hpa_metrics(specs: list | None, statuses: list | None) -> str:
    if not specs:
        return NONE
    statuses = statuses or []
    shown: list[str] = []
    for index, spec in enumerate(specs):
        status = statuses[index] if index < len(statuses) else {}
        kind = spec.get("type")
        if kind in ("External", "Object"):
            key = "external" if kind == "External" else "object"
            target = _get(spec, key, "target") or {}
            current = _get(status, key, "current") or {}
            if target.get("averageValue") is not None:
                shown.append(f"{current.get('averageValue') or '<unknown>'}/{target['averageValue']} (avg)")
            else:
                shown.append(f"{current.get('value') or '<unknown>'}/{target.get('value')}")
        elif kind == "Pods":
            current = _get(status, "pods", "current", "averageValue") or "<unknown>"
            shown.append(f"{current}/{_get(spec, 'pods', 'target', 'averageValue')}")
        elif kind in ("Resource", "ContainerResource"):
            key = "resource" if kind == "Resource" else "containerResource"
            source = spec.get(key) or {}
            target = source.get("target") or {}
            current = _get(status, key, "current") or {}
            if target.get("averageValue") is not None:
                shown.append(f"{source.get('name')}: {current.get('averageValue') or '<unknown>'}/{target['averageValue']}")
            else:
                now_pct = current.get("averageUtilization")
                now_text = f"{now_pct}%" if now_pct is not None else "<unknown>"
                want = target.get("averageUtilization")
                want_text = f"{want}%" if want is not None else "<auto>"
                shown.append(f"{source.get('name')}: {now_text}/{want_text}")
        else:
            shown.append("<unknown type>")
    if len(shown) > 2:
        return ", ".join(shown[:2]) + f" + {len(shown) - 2} more..."
    return ", ".join(shown)


def _hpa_row(obj: dict, now: datetime) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [
        _get(obj, "metadata", "name", default=""),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        format_hpa_metrics(spec.get("metrics"), status.get("currentMetrics")),
        str(min_pods) if min_pods is not None else "<unset>",
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
    ]


def _simple(*cells: Callable[[dict], Any]) -> Callable[[dict, datetime], list]:
    """A row of name, the given cells, age."""

    def row(obj: dict, now: datetime) -> list:
        return [
            _get(obj, "metadata", "name", default=""),
            *(cell(obj) for cell in cells),
            _since(_get(obj, "metadata", "creationTimestamp"), now),
        ]

    return row


def _priority_class_row(obj: dict, now: datetime) -> list:
    return [
        _get(obj, "metadata", "name", default=""),
        _int(obj.get("value")),
        bool(obj.get("globalDefault")),
        _since(_get(obj, "metadata", "creationTimestamp"), now),
        obj.get("preemptionPolicy") or NONE,
    ]


# --------------------------------------------------------------------------- the printer table


@dataclass(frozen=True)
class Printer:
    columns: Callable[[], list[Column]]
    row: Callable[[dict, datetime], list]


def _printers() -> dict[str, Printer]:
    name, age = _name_column, _age_column
    return {
        "Pod": Printer(lambda: [
            name(),
            Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
            Column("Status", description="The aggregate status of the containers in this pod."),
            Column("Restarts", description="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age(),
            Column("IP", priority=1, description=_doc(f"{CORE}.PodStatus", "podIP")),
            Column("Node", priority=1, description=_doc(f"{CORE}.PodSpec", "nodeName")),
            Column("Nominated Node", priority=1, description=_doc(f"{CORE}.PodStatus", "nominatedNodeName")),
            Column("Readiness Gates", priority=1, description=_doc(f"{CORE}.PodSpec", "readinessGates")),
        ], _pod_row),
        "Deployment": Printer(lambda: [
            name(),
            Column("Ready", description="Number of the pod with ready state"),
            Column("Up-to-date", description=_doc("io.k8s.api.apps.v1.DeploymentStatus", "updatedReplicas")),
            Column("Available", description=_doc("io.k8s.api.apps.v1.DeploymentStatus", "availableReplicas")),
            age(), *_template_columns(),
        ], _deployment_row),
        "ReplicaSet": Printer(lambda: [
            name(),
            Column("Desired", "integer", _doc("io.k8s.api.apps.v1.ReplicaSetSpec", "replicas")),
            Column("Current", "integer", _doc("io.k8s.api.apps.v1.ReplicaSetStatus", "replicas")),
            Column("Ready", "integer", _doc("io.k8s.api.apps.v1.ReplicaSetStatus", "readyReplicas")),
            age(), *_template_columns(),
        ], _replicaset_row),
        "DaemonSet": Printer(lambda: [
            name(),
            Column("Desired", "integer", _doc("io.k8s.api.apps.v1.DaemonSetStatus", "desiredNumberScheduled")),
            Column("Current", "integer", _doc("io.k8s.api.apps.v1.DaemonSetStatus", "currentNumberScheduled")),
            Column("Ready", "integer", _doc("io.k8s.api.apps.v1.DaemonSetStatus", "numberReady")),
            Column("Up-to-date", "integer", _doc("io.k8s.api.apps.v1.DaemonSetStatus", "updatedNumberScheduled")),
            Column("Available", "integer", _doc("io.k8s.api.apps.v1.DaemonSetStatus", "numberAvailable")),
            Column("Node Selector", description=_doc(f"{CORE}.PodSpec", "nodeSelector")),
            age(), *_template_columns(),
        ], _daemonset_row),
        "StatefulSet": Printer(lambda: [
            name(), Column("Ready", description="Number of the pod with ready state"), age(),
            *_template_columns(selector=False),
        ], _statefulset_row),
        "Job": Printer(lambda: [
            name(),
            Column("Status", description="Status of the job."),
            Column("Completions", description=_doc("io.k8s.api.batch.v1.JobStatus", "succeeded")),
            Column("Duration", description="Time required to complete the job."),
            age(), *_template_columns(),
        ], _job_row),
        "CronJob": Printer(lambda: [
            name(),
            Column("Schedule", description=_doc("io.k8s.api.batch.v1.CronJobSpec", "schedule")),
            Column("Timezone", description=_doc("io.k8s.api.batch.v1.CronJobSpec", "timeZone")),
            Column("Suspend", "boolean", _doc("io.k8s.api.batch.v1.CronJobSpec", "suspend")),
            Column("Active", "integer", _doc("io.k8s.api.batch.v1.CronJobStatus", "active")),
            Column("Last Schedule", description=_doc("io.k8s.api.batch.v1.CronJobStatus", "lastScheduleTime")),
            age(), *_template_columns(),
        ], _cronjob_row),
        "Service": Printer(lambda: [
            name(),
            Column("Type", description=_doc(f"{CORE}.ServiceSpec", "type")),
            Column("Cluster-IP", description=_doc(f"{CORE}.ServiceSpec", "clusterIP")),
            Column("External-IP", description=_doc(f"{CORE}.ServiceSpec", "externalIPs")),
            Column("Port(s)", description=_doc(f"{CORE}.ServiceSpec", "ports")),
            age(),
            Column("Selector", priority=1, description=_doc(f"{CORE}.ServiceSpec", "selector")),
        ], _service_row),
        "Endpoints": Printer(lambda: [
            name(), Column("Endpoints", description=_doc(f"{CORE}.Endpoints", "subsets")), age(),
        ], _endpoints_row),
        "EndpointSlice": Printer(lambda: [
            name(),
            Column("AddressType", description=_doc("io.k8s.api.discovery.v1.EndpointSlice", "addressType")),
            Column("Ports", description=_doc("io.k8s.api.discovery.v1.EndpointSlice", "ports")),
            Column("Endpoints", description=_doc("io.k8s.api.discovery.v1.EndpointSlice", "endpoints")),
            age(),
        ], _endpointslice_row),
        "Node": Printer(lambda: [
            name(),
            Column("Status", description="The status of the node"),
            Column("Roles", description="The roles of the node"),
            age(),
            Column("Version", description=_doc(f"{CORE}.NodeSystemInfo", "kubeletVersion")),
            Column("Internal-IP", priority=1, description=_doc(f"{CORE}.NodeStatus", "addresses")),
            Column("External-IP", priority=1, description=_doc(f"{CORE}.NodeStatus", "addresses")),
            Column("OS-Image", priority=1, description=_doc(f"{CORE}.NodeSystemInfo", "osImage")),
            Column("Kernel-Version", priority=1, description=_doc(f"{CORE}.NodeSystemInfo", "kernelVersion")),
            Column("Container-Runtime", priority=1, description=_doc(f"{CORE}.NodeSystemInfo", "containerRuntimeVersion")),
        ], _node_row),
        "Namespace": Printer(lambda: [
            name(), Column("Status", description="The status of the namespace"), age(),
        ], _simple(lambda o: _get(o, "status", "phase", default=""))),
        "ConfigMap": Printer(lambda: [
            name(), Column("Data", description=_doc(f"{CORE}.ConfigMap", "data")), age(),
        ], _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))),
        "Secret": Printer(lambda: [
            name(),
            Column("Type", description=_doc(f"{CORE}.Secret", "type")),
            Column("Data", description=_doc(f"{CORE}.Secret", "data")),
            age(),
        ], _simple(lambda o: o.get("type", ""), lambda o: len(o.get("data") or {}))),
        "ServiceAccount": Printer(lambda: [
            name(), Column("Secrets", description=_doc(f"{CORE}.ServiceAccount", "secrets")), age(),
        ], _simple(lambda o: len(o.get("secrets") or []))),
        "Event": Printer(lambda: [
            Column("Last Seen", description=_doc(f"{CORE}.Event", "lastTimestamp")),
            Column("Type", description=_doc(f"{CORE}.Event", "type")),
            Column("Reason", description=_doc(f"{CORE}.Event", "reason")),
            Column("Object", description=_doc(f"{CORE}.Event", "involvedObject")),
            Column("Subobject", priority=1, description=_doc(f"{CORE}.ObjectReference", "fieldPath")),
            Column("Source", priority=1, description=_doc(f"{CORE}.Event", "source")),
            Column("Message", description=_doc(f"{CORE}.Event", "message")),
            Column("First Seen", priority=1, description=_doc(f"{CORE}.Event", "firstTimestamp")),
            Column("Count", priority=1, description=_doc(f"{CORE}.Event", "count")),
            Column("Name", priority=1, format="name", description=_doc(f"{META}.ObjectMeta", "name")),
        ], _event_row),
        "Lease": Printer(lambda: [
            name(), Column("Holder", description=_doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")), age(),
        ], _simple(lambda o: _get(o, "spec", "holderIdentity", default=""))),
        "PriorityClass": Printer(lambda: [
            name(),
            Column("Value", "integer", _doc("io.k8s.api.scheduling.v1.PriorityClass", "value")),
            Column("Global-Default", "boolean", _doc("io.k8s.api.scheduling.v1.PriorityClass", "globalDefault")),
            age(),
            # wide only since Kubernetes 1.32 (kubernetes/kubernetes#126529)
            Column("PreemptionPolicy", priority=1,
                   description=_doc("io.k8s.api.scheduling.v1.PriorityClass", "preemptionPolicy")),
        ], _priority_class_row),
        "PodDisruptionBudget": Printer(lambda: [
            name(),
            Column("Min Available", description="The minimum number of pods that must be available."),
            Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
            Column("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
            age(),
        ], _simple(
            lambda o: _int_or_string(_get(o, "spec", "minAvailable")),
            lambda o: _int_or_string(_get(o, "spec", "maxUnavailable")),
            lambda o: _int(_get(o, "status", "disruptionsAllowed")),
        )),
        "HorizontalPodAutoscaler": Printer(lambda: [
            name(),
            Column("Reference", description=_doc("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "scaleTargetRef")),
            Column("Targets", description=_doc("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "metrics")),
            Column("MinPods", description=_doc("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "minReplicas")),
            Column("MaxPods", description=_doc("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "maxReplicas")),
            Column("Replicas", description=_doc("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas")),
            age(),
        ], _hpa_row),
    }


_PRINTERS: dict[str, Printer] | None = None
_GENERIC = Printer(lambda: [_name_column(), _age_column()], _simple())


def printer_for(kind: str) -> Printer:
    global _PRINTERS
    if _PRINTERS is None:
        _PRINTERS = _printers()
    return _PRINTERS.get(kind, _GENERIC)


def _kind_name(kind_info: Any) -> str:
    if isinstance(kind_info, str):
        return kind_info
    kind = getattr(kind_info, "kind", None)
    if kind is None and isinstance(kind_info, dict):
        kind = kind_info.get("kind")
    return str(kind or "")


def _row_or_unknown(printer: Printer, obj: dict, now: datetime, width: int) -> list:
    """The printed row; a stored object of the wrong shape prints "<unknown>" cells instead of
    failing the whole list (types are validated on write, so this is a last line of defence)."""
    try:
        return printer.row(obj, now)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        name = _get(obj, "metadata", "name", default="") if isinstance(obj, dict) else ""
        cells: list = ["<unknown>"] * width
        if printer.columns()[0].format == "name":
            cells[0] = name
        return cells


def partial_object_metadata(obj: dict) -> dict:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def to_table(
    kind_info: Any,
    objects: Iterable[dict],
    *,
    wide: bool = False,
    now: datetime | None = None,
    include_object: str = "Metadata",
    no_headers: bool = False,
    list_meta: dict | None = None,
) -> dict:
    """A ``meta.k8s.io/v1`` Table of ``objects`` (all of one kind) with Kubernetes' columns.

    ``kind_info`` is the registry's kind (anything with a ``kind`` attribute) or a kind name.
    ``include_object``: ``Metadata`` (PartialObjectMetadata, kubectl's default), ``Object``
    (the whole object) or ``None``. ``no_headers`` leaves out ``columnDefinitions`` (TableOptions
    ``noHeaders``, sent by ``kubectl get --watch`` after the first page).
    """
    if include_object not in ("Metadata", "Object", "None"):
        raise ValueError(f"includeObject must be Metadata, Object or None, not {include_object!r}")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    kind = _kind_name(kind_info)
    printer = printer_for(kind)
    columns = printer.columns()
    keep = [i for i, c in enumerate(columns) if wide or c.priority == 0]
    rows = []
    for obj in objects:
        cells = _row_or_unknown(printer, obj, now, len(columns))
        row: dict[str, Any] = {"cells": [cells[i] for i in keep if i < len(cells)]}
        if kind == "Pod":
            conditions = _pod_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        if include_object == "Metadata":
            row["object"] = partial_object_metadata(obj)
        elif include_object == "Object":
            row["object"] = obj
        rows.append(row)
    table: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
    }
    if not no_headers:
        table["columnDefinitions"] = [columns[i].definition() for i in keep]
    table["rows"] = rows
    return table
