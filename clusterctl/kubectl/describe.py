"""``clusterctl describe``: kubectl's human-readable description of pods, services, deployments,
nodes (and a generic fallback for other kinds), with the object's Events at the end.

A Pending pod that the scheduler has not placed also gets the scheduler's per-node explanation
(``clusterctl.scheduler.explain``: which filter rejected each node, and the scores).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from clusterctl.api.tables import format_endpoints, human_duration, parse_time
from clusterctl.errors import UsageError
from clusterctl.kubectl.get import parse_targets
from clusterctl.kubectl.printers import format_rows
from clusterctl.kubectl.session import Session


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("describe", parents=parents, help="show details of a resource or group of resources",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  clusterctl describe pod web-5d8f-abcde\n  clusterctl describe services/web\n"
                              "  clusterctl describe deploy web\n  clusterctl describe nodes\n  clusterctl describe pods -l app=web\n")
    p.add_argument("resources", nargs="+")
    p.add_argument("-l", "--selector")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.set_defaults(func=run)


class Writer:
    """kubectl's PrefixWriter: ``Key:  value`` lines, values aligned per level."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, str | None]] = []

    def kv(self, key: str, value: Any = "", level: int = 0) -> None:
        self.lines.append((level, f"{key}:", "" if value is None else str(value)))

    def line(self, text: str, level: int = 0) -> None:
        self.lines.append((level, text, None))

    def cont(self, value: str, level: int = 0) -> None:
        """A further value of the previous key, aligned under its first value."""
        self.lines.append((level, "", value))

    def render(self) -> str:
        width = max((len(k) for lvl, k, v in self.lines if v is not None and lvl == 0), default=0)
        out: list[str] = []
        prev_key = ""
        for level, key, value in self.lines:
            pad = "  " * level
            if value is None:
                out.append(pad + key)
            elif value == "":
                out.append((pad + key).rstrip())
            elif level == 0:
                out.append(f"{key.ljust(width + 1)} {value}".rstrip())
            elif key == "":
                out.append(f"{pad}{' ' * (len(prev_key) + 2)}{value}")
            else:
                out.append(f"{pad}{key}  {value}")
            if key:
                prev_key = key
        return "\n".join(out)


def _map(w: Writer, key: str, m: dict | None, level: int = 0) -> None:
    items = sorted((m or {}).items())
    if not items:
        w.kv(key, "<none>", level)
        return
    k, v = items[0]
    w.kv(key, f"{k}={v}", level)
    for k, v in items[1:]:
        w.cont(f"{k}={v}", level)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ts(value: Any) -> str:
    t = parse_time(value)
    return t.strftime("%a, %d %b %Y %H:%M:%S +0000") if t else "<unset>"


async def events_for(s: Session, obj: dict) -> list[dict]:
    meta = obj["metadata"]
    ns = meta.get("namespace") or "default"
    try:
        evs = (await s.client.list("events", namespace=ns))["items"]
    except Exception:  # noqa: BLE001 - events are best-effort in describe, like kubectl
        return []
    uid = meta.get("uid")
    out = [e for e in evs if (e.get("involvedObject") or {}).get("uid") == uid
           or ((e.get("involvedObject") or {}).get("name") == meta["name"] and (e.get("involvedObject") or {}).get("kind") == obj.get("kind"))]
    out.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or "")
    return out


def render_events(events: list[dict]) -> str:
    if not events:
        return "Events:  <none>"
    now = _now()
    rows = []
    for e in events:
        last = parse_time(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"))
        age = human_duration((now - last).total_seconds()) if last else "<unknown>"
        count = e.get("count") or 1
        if count > 1:
            first = parse_time(e.get("firstTimestamp"))
            age = f"{age} (x{count} over {human_duration((now - first).total_seconds())})" if first else age
        src = e.get("reportingComponent") or (e.get("source") or {}).get("component") or ""
        rows.append([e.get("type", ""), e.get("reason", ""), age, src, (e.get("message") or "").strip()])
    header, *body = format_rows(["Type", "Reason", "Age", "From", "Message"], rows).splitlines()
    dashes = "".join(" " if ch == " " else "-" for ch in header)
    return "Events:\n" + "\n".join("  " + line for line in [header, dashes, *body])


def _container_state(state: dict | None) -> tuple[str, list[tuple[str, str]]]:
    state = state or {}
    if "running" in state:
        return "Running", [("Started", _ts(state["running"].get("startedAt")))]
    if "terminated" in state:
        t = state["terminated"]
        return "Terminated", [("Reason", t.get("reason", "")), ("Exit Code", str(t.get("exitCode", ""))),
                              ("Started", _ts(t.get("startedAt"))), ("Finished", _ts(t.get("finishedAt")))]
    if "waiting" in state:
        return "Waiting", [("Reason", state["waiting"].get("reason", ""))]
    return "Waiting", []


def describe_pod(pod: dict, explanation: str | None) -> str:
    meta, spec, st = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    w = Writer()
    w.kv("Name", meta["name"])
    w.kv("Namespace", meta.get("namespace"))
    w.kv("Priority", spec.get("priority", 0))
    w.kv("Service Account", spec.get("serviceAccountName", "default"))
    node = spec.get("nodeName")
    w.kv("Node", f"{node}/{st.get('hostIP', '')}" if node else "<none>")
    if st.get("startTime"):
        w.kv("Start Time", _ts(st.get("startTime")))
    _map(w, "Labels", meta.get("labels"))
    _map(w, "Annotations", meta.get("annotations"))
    phase = st.get("phase", "Pending")
    if meta.get("deletionTimestamp"):
        w.kv("Status", f"Terminating (lasts {human_duration((_now() - parse_time(meta['deletionTimestamp'])).total_seconds())})")
    else:
        w.kv("Status", phase)
    if st.get("reason"):
        w.kv("Reason", st["reason"])
    if st.get("message"):
        w.kv("Message", st["message"])
    w.kv("IP", st.get("podIP", ""))
    ips = st.get("podIPs") or []
    if ips:
        w.kv("IPs", "")
        for ip in ips:
            w.line(f"IP:  {ip.get('ip')}", 1)
    else:
        w.kv("IPs", "<none>")
    ctrl = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if ctrl:
        w.kv("Controlled By", f"{ctrl['kind']}/{ctrl['name']}")
    statuses = {c["name"]: c for c in st.get("containerStatuses") or []}
    w.kv("Containers", "")
    for c in spec.get("containers") or []:
        cs = statuses.get(c["name"], {})
        w.line(f"{c['name']}:", 1)
        w.line(f"Container ID:  {cs.get('containerID', '')}".rstrip(), 2)
        w.line(f"Image:         {c.get('image', '')}", 2)
        w.line(f"Image ID:      {cs.get('imageID', '')}".rstrip(), 2)
        ports = c.get("ports") or []
        w.line(f"Port:          {', '.join(str(p['containerPort']) + '/' + p.get('protocol', 'TCP') for p in ports) or '<none>'}", 2)
        if c.get("command"):
            w.line("Command:", 2)
            for part in c["command"]:
                w.line(part, 3)
        if c.get("args"):
            w.line("Args:", 2)
            for part in c["args"]:
                w.line(part, 3)
        state, details = _container_state(cs.get("state"))
        w.line(f"State:         {state}", 2)
        for k, v in details:
            w.line(f"{k + ':':<14} {v}", 3)
        if cs.get("lastState"):
            last, details = _container_state(cs.get("lastState"))
            if cs["lastState"]:
                w.line(f"Last State:    {last}", 2)
                for k, v in details:
                    w.line(f"{k + ':':<14} {v}", 3)
        w.line(f"Ready:         {'True' if cs.get('ready') else 'False'}", 2)
        w.line(f"Restart Count: {cs.get('restartCount', 0)}", 2)
        res = c.get("resources") or {}
        for section in ("limits", "requests"):
            if res.get(section):
                w.line(f"{section.capitalize()}:", 2)
                for k, v in sorted(res[section].items()):
                    w.line(f"{k}:  {v}", 3)
        env = c.get("env") or []
        w.line("Environment:" + ("  <none>" if not env else ""), 2)
        for e in env:
            w.line(f"{e['name']}:  {e.get('value', '<set from a reference>')}", 3)
    w.kv("Conditions", "")
    conds = st.get("conditions") or []
    if conds:
        for line in format_rows(["Type", "Status"], [[c["type"], str(c.get("status"))] for c in conds]).splitlines():
            w.line(line, 1)
    vols = spec.get("volumes") or []
    w.kv("Volumes", "" if vols else "<none>")
    for v in vols:
        kind = next((k for k in v if k != "name"), "")
        w.line(f"{v['name']}:", 1)
        w.line(f"Type:  {kind}", 2)
    w.kv("QoS Class", st.get("qosClass", ""))
    _map(w, "Node-Selectors", spec.get("nodeSelector"))
    tols = spec.get("tolerations") or []
    w.kv("Tolerations", ", ".join(f"{t.get('key', '')}:{t.get('effect', '')}".strip(":") for t in tols) or "<none>")
    text = w.render()
    if explanation:
        text += "\nScheduling:\n" + "\n".join("  " + line for line in explanation.splitlines())
    return text


def describe_service(svc: dict, endpoints: dict | None) -> str:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    w = Writer()
    w.kv("Name", meta["name"])
    w.kv("Namespace", meta.get("namespace"))
    _map(w, "Labels", meta.get("labels"))
    _map(w, "Annotations", meta.get("annotations"))
    sel = spec.get("selector") or {}
    w.kv("Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>")
    w.kv("Type", spec.get("type", "ClusterIP"))
    w.kv("IP Family Policy", spec.get("ipFamilyPolicy", "SingleStack"))
    w.kv("IP Families", ",".join(spec.get("ipFamilies") or ["IPv4"]))
    w.kv("IP", spec.get("clusterIP", ""))
    w.kv("IPs", ",".join(spec.get("clusterIPs") or [spec.get("clusterIP", "")]))
    ep_text = format_endpoints(endpoints) if endpoints else "<none>"
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        w.kv("Port", f"{name}  {p.get('port')}/{p.get('protocol', 'TCP')}")
        tp = p.get("targetPort", p.get("port"))
        w.kv("TargetPort", f"{tp}/{p.get('protocol', 'TCP')}")
        if p.get("nodePort"):
            w.kv("NodePort", f"{name}  {p['nodePort']}/{p.get('protocol', 'TCP')}")
        w.kv("Endpoints", ep_text if ep_text else "<none>")
    if not spec.get("ports"):
        w.kv("Endpoints", ep_text or "<none>")
    w.kv("Session Affinity", spec.get("sessionAffinity", "None"))
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        w.kv("External Traffic Policy", spec.get("externalTrafficPolicy", "Cluster"))
    w.kv("Internal Traffic Policy", spec.get("internalTrafficPolicy", "Cluster"))
    return w.render()


def describe_deployment(dep: dict, rss: list[dict]) -> str:
    meta, spec, st = dep["metadata"], dep.get("spec") or {}, dep.get("status") or {}
    w = Writer()
    w.kv("Name", meta["name"])
    w.kv("Namespace", meta.get("namespace"))
    w.kv("CreationTimestamp", _ts(meta.get("creationTimestamp")))
    _map(w, "Labels", meta.get("labels"))
    _map(w, "Annotations", meta.get("annotations"))
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    w.kv("Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    w.kv("Replicas", f"{spec.get('replicas', 1)} desired | {st.get('updatedReplicas', 0)} updated | {st.get('replicas', 0)} total | "
                     f"{st.get('availableReplicas', 0)} available | {st.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    w.kv("StrategyType", strategy.get("type", "RollingUpdate"))
    w.kv("MinReadySeconds", spec.get("minReadySeconds", 0))
    ru = strategy.get("rollingUpdate") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        w.kv("RollingUpdateStrategy", f"{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge")
    tmpl = spec.get("template") or {}
    w.kv("Pod Template", "")
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    w.line("Labels:  " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"), 1)
    w.line("Containers:", 1)
    for c in (tmpl.get("spec") or {}).get("containers") or []:
        w.line(f"{c['name']}:", 2)
        w.line(f"Image:        {c.get('image')}", 3)
        ports = c.get("ports") or []
        w.line(f"Port:         {', '.join(str(p['containerPort']) + '/' + p.get('protocol', 'TCP') for p in ports) or '<none>'}", 3)
    conds = st.get("conditions") or []
    w.kv("Conditions", "")
    if conds:
        w.line("Type           Status  Reason", 1)
        w.line("----           ------  ------", 1)
        for c in conds:
            w.line(f"{c['type']:<14} {c.get('status', ''):<7} {c.get('reason', '')}", 1)
    rev = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
    new = [r for r in rss if (r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") == rev]
    old = [r for r in rss if r not in new and ((r.get("spec") or {}).get("replicas") or 0) > 0]
    fmt = lambda r: f"{r['metadata']['name']} ({(r.get('status') or {}).get('replicas', 0)}/{(r.get('spec') or {}).get('replicas', 0)} replicas created)"  # noqa: E731
    w.kv("OldReplicaSets", ", ".join(fmt(r) for r in old) or "<none>")
    w.kv("NewReplicaSet", ", ".join(fmt(r) for r in new) or "<none>")
    return w.render()


def describe_node(node: dict, pods: list[dict]) -> str:
    from clusterctl.api.tables import node_roles
    meta, spec, st = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    w = Writer()
    w.kv("Name", meta["name"])
    w.kv("Roles", node_roles(node))
    _map(w, "Labels", meta.get("labels"))
    _map(w, "Annotations", meta.get("annotations"))
    w.kv("CreationTimestamp", _ts(meta.get("creationTimestamp")))
    taints = spec.get("taints") or []
    w.kv("Taints", ", ".join(f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}" for t in taints) or "<none>")
    w.kv("Unschedulable", "true" if spec.get("unschedulable") else "false")
    w.kv("Conditions", "")
    rows = [[c["type"], c.get("status", ""), _ts(c.get("lastHeartbeatTime")), _ts(c.get("lastTransitionTime")), c.get("reason", ""), c.get("message", "")]
            for c in st.get("conditions") or []]
    for line in format_rows(["Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message"], rows).splitlines():
        w.line(line, 1)
    w.kv("Addresses", "")
    for a in st.get("addresses") or []:
        w.line(f"{a['type']}:  {a['address']}", 1)
    for section in ("capacity", "allocatable"):
        w.kv(section.capitalize(), "")
        for k, v in sorted((st.get(section) or {}).items()):
            w.line(f"{k}:  {v}", 1)
    info = st.get("nodeInfo") or {}
    if info:
        w.kv("System Info", "")
        for k in ("machineID", "kernelVersion", "osImage", "containerRuntimeVersion", "kubeletVersion", "operatingSystem", "architecture"):
            if info.get(k):
                w.line(f"{k[0].upper() + k[1:]}:  {info[k]}", 1)
    w.kv("PodCIDR", spec.get("podCIDR", ""))
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    w.kv("Non-terminated Pods", f"({len(live)} in total)")
    prow = []
    now = _now()
    for p in live:
        req = {"cpu": 0, "memory": 0}
        from clusterctl.client.quantity import cpu_millis, memory_bytes
        for c in (p.get("spec") or {}).get("containers") or []:
            r = (c.get("resources") or {}).get("requests") or {}
            req["cpu"] += cpu_millis(r.get("cpu"))
            req["memory"] += memory_bytes(r.get("memory"))
        created = parse_time(p["metadata"].get("creationTimestamp"))
        prow.append([p["metadata"].get("namespace", ""), p["metadata"]["name"], f"{req['cpu']}m", str(req["memory"]),
                     human_duration((now - created).total_seconds()) if created else ""])
    for line in format_rows(["Namespace", "Name", "CPU Requests", "Memory Requests", "Age"], prow).splitlines():
        w.line(line, 1)
    return w.render()


def describe_generic(obj: dict) -> str:
    from clusterctl.kubectl.printers import to_yaml
    meta = obj["metadata"]
    w = Writer()
    w.kv("Name", meta["name"])
    if meta.get("namespace"):
        w.kv("Namespace", meta["namespace"])
    _map(w, "Labels", meta.get("labels"))
    _map(w, "Annotations", meta.get("annotations"))
    w.kv("API Version", obj.get("apiVersion"))
    w.kv("Kind", obj.get("kind"))
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    text = w.render()
    for key, value in body.items():
        text += f"\n{key[0].upper() + key[1:]}:\n" + "\n".join("  " + line for line in to_yaml(value).rstrip().splitlines())
    return text


async def describe_one(s: Session, rt, obj: dict) -> str:
    obj.setdefault("kind", rt.kind)
    obj.setdefault("apiVersion", rt.api_version)
    ns = obj["metadata"].get("namespace")
    if rt.kind == "Pod":
        explanation = None
        if not (obj.get("spec") or {}).get("nodeName") and (obj.get("status") or {}).get("phase", "Pending") == "Pending":
            try:
                from clusterctl.scheduler.explain import explain, render_explain_table
                nodes = (await s.client.list("nodes"))["items"]
                pods = (await s.client.list("pods"))["items"]
                explanation = render_explain_table(explain(obj, nodes, pods))
            except Exception as exc:  # noqa: BLE001 - the explanation is extra; describe must still work
                explanation = f"(no scheduler explanation: {exc})"
        text = describe_pod(obj, explanation)
    elif rt.kind == "Service":
        try:
            ep = await s.client.get("endpoints", obj["metadata"]["name"], namespace=ns)
        except Exception:  # noqa: BLE001 - no Endpoints object yet: shown as <none>
            ep = None
        text = describe_service(obj, ep)
    elif rt.kind == "Deployment":
        sel = ",".join(f"{k}={v}" for k, v in ((obj["spec"].get("selector") or {}).get("matchLabels") or {}).items())
        rss = (await s.client.list("replicasets", namespace=ns, label_selector=sel))["items"]
        uid = obj["metadata"].get("uid")
        rss = [r for r in rss if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])]
        text = describe_deployment(obj, rss)
    elif rt.kind == "Node":
        pods = (await s.client.list("pods", field_selector=f"spec.nodeName={obj['metadata']['name']}"))["items"]
        text = describe_node(obj, pods)
    else:
        text = describe_generic(obj)
    if rt.kind == "Node":
        obj_for_events = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
        return text + "\n" + render_events(await events_for(s, obj_for_events))
    return text + "\n" + render_events(await events_for(s, obj))


async def run(args: argparse.Namespace, s: Session) -> int:
    words = list(args.resources)
    outputs = []
    for resource, names in parse_targets(words):
        rt = await s.client.resource_type(resource)
        ns = s.namespace if rt.namespaced else None
        if names:
            objs = [await s.client.get(rt.plural, n, namespace=ns, api_version=rt.api_version) for n in names]
        else:
            objs = (await s.client.list(rt.plural, namespace=s.list_namespace() if rt.namespaced else None,
                                        label_selector=args.selector, api_version=rt.api_version))["items"]
            if not objs:
                raise UsageError(f"No resources found{'' if not rt.namespaced or s.all_namespaces else f' in {s.namespace} namespace'}.")
        for obj in objs:
            outputs.append(await describe_one(s, rt, obj))
    print("\n\n\n".join(outputs))
    return 0
