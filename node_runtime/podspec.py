"""From a pod's spec to what a container runs: argv, env, QoS class, limits, /etc files.

Pure functions (no I/O besides the ``lookup`` callables passed in), so the Kubernetes rules live
in one place and are unit-testable: OCI Entrypoint/Cmd vs ``command``/``args``, ``$(VAR)``
expansion, env from values, ConfigMap/Secret keys, the downward API and ``envFrom``, Service
discovery variables, QoS classes, and the pod's /etc/hosts and /etc/resolv.conf.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from clusterctl.client.quantity import cpu_millis, memory_bytes
from node_runtime.errors import NodeRuntimeError
from node_runtime.volumes import configmap_bytes, secret_bytes

Lookup = Callable[[str, str, str], Awaitable[dict | None]]
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


class ContainerConfigError(NodeRuntimeError):
    """The container cannot be created from its spec (CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: unknown references stay as written, ``$$`` escapes."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def argv_for(container: dict, image_config: dict, env: dict[str, str]) -> list[str]:
    """The OCI/Kubernetes rules: command replaces Entrypoint (and drops Cmd); args replace Cmd."""
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [expand(c, env) for c in command] + [expand(a, env) for a in (args or [])]
    elif args:
        argv = entrypoint + [expand(a, env) for a in args]
    else:
        argv = entrypoint + cmd
    if not argv:
        raise ContainerConfigError("no command specified")
    return argv


def field_value(pod: dict, path: str, *, container: dict | None = None) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", ""),
    }
    if path in simple:
        return simple[path]
    if path == "status.podIPs":
        return ",".join(i["ip"] for i in status.get("podIPs") or [])
    if path == "status.hostIPs":
        return ",".join(i["ip"] for i in status.get("hostIPs") or [])
    for prefix, src in (("metadata.labels", meta.get("labels") or {}), ("metadata.annotations", meta.get("annotations") or {})):
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(src.items()))
        m = re.fullmatch(re.escape(prefix) + r"\['([^']+)'\]", path)
        if m:
            return src.get(m.group(1), "")
    if path.startswith("resource:"):
        return resource_value(pod, container, {"resource": path.split(":", 1)[1]})
    raise ContainerConfigError(f'unsupported fieldPath "{path}"')


def resource_value(pod: dict, container: dict | None, ref: dict) -> str:
    if container is None or ref.get("containerName"):
        name = ref.get("containerName")
        container = next((c for c in (pod["spec"].get("containers") or []) if c["name"] == name), container)
    resource = ref.get("resource", "")
    kind, _, what = resource.partition(".")
    res = (container or {}).get("resources") or {}
    value = (res.get(kind) or {}).get(what)
    divisor = ref.get("divisor")
    if what == "cpu":
        millis = cpu_millis(value) if value is not None else (0 if kind == "requests" else 0)
        if value is None and kind == "limits":
            import os
            millis = (os.cpu_count() or 1) * 1000
        div = cpu_millis(divisor) if divisor else 1000
        return str(max(1, -(-millis // div)) if millis else 0)
    if what in ("memory", "ephemeral-storage"):
        n = memory_bytes(value) if value is not None else 0
        if value is None and kind == "limits":
            import psutil
            n = psutil.virtual_memory().total
        div = memory_bytes(divisor) if divisor else 1
        return str(-(-n // div))
    raise ContainerConfigError(f'unsupported resource "{resource}"')


def service_env(services: list[dict]) -> dict[str, str]:
    """``<NAME>_SERVICE_HOST``/``_PORT`` (and docker-link style) for Services with a ClusterIP."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or not spec.get("ports"):
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        ports = spec["ports"]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
            proto = (p.get("protocol") or "TCP").lower()
            base = f"{name}_PORT_{p['port']}_{proto.upper()}"
            env[base] = f"{proto}://{ip}:{p['port']}"
            env[base + "_PROTO"] = proto
            env[base + "_PORT"] = str(p["port"])
            env[base + "_ADDR"] = ip
        env[f"{name}_PORT"] = f"{(ports[0].get('protocol') or 'TCP').lower()}://{ip}:{ports[0]['port']}"
    return env


async def container_env(pod: dict, container: dict, image_config: dict, lookup: Lookup,
                        services: list[dict] | None = None) -> dict[str, str]:
    """The container's environment in Kubernetes' order: image, services, envFrom, env."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for item in image_config.get("Env") or []:
        k, _, v = item.partition("=")
        env[k] = v
    if (pod.get("spec") or {}).get("enableServiceLinks", True):
        env.update(service_env(services or []))
    env.setdefault("HOSTNAME", pod["metadata"]["name"][:63])
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            obj = await lookup("ConfigMap", ns, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'configmap "{ref["name"]}" not found')
            data = configmap_bytes(obj)
        elif "secretRef" in src:
            ref = src["secretRef"]
            obj = await lookup("Secret", ns, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'secret "{ref["name"]}" not found')
            data = secret_bytes(obj)
        else:
            continue
        for k, v in data.items():
            env[prefix + k] = v.decode(errors="replace")
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        vf = item.get("valueFrom") or {}
        if "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"]["fieldPath"], container=container)
        elif "resourceFieldRef" in vf:
            env[name] = resource_value(pod, container, vf["resourceFieldRef"])
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind, ref = ("ConfigMap", vf["configMapKeyRef"]) if "configMapKeyRef" in vf else ("Secret", vf["secretKeyRef"])
            obj = await lookup(kind, ns, ref["name"])
            data = (configmap_bytes(obj) if kind == "ConfigMap" else secret_bytes(obj)) if obj is not None else None
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                what = f'{kind.lower()} "{ref["name"]}"'
                raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in {what}' if data is not None else f"{what} not found")
            env[name] = data[ref["key"]].decode(errors="replace")
        else:
            env[name] = ""
    return env


def qos_class(pod: dict) -> str:
    """Guaranteed / Burstable / BestEffort, computed like Kubernetes (containers + init containers)."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = dict(res.get("requests") or {}), res.get("limits") or {}
        for k, v in lim.items():
            req.setdefault(k, v)  # requests default to limits
        for r in ("cpu", "memory"):
            if r in req or r in lim:
                any_set = True
            if r not in lim or r not in req:
                guaranteed = False
            elif r == "cpu" and cpu_millis(req[r]) != cpu_millis(lim[r]):
                guaranteed = False
            elif r == "memory" and memory_bytes(req[r]) != memory_bytes(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def limits(container: dict) -> tuple[int | None, int | None]:
    """(cpu millis, memory bytes) from resources.limits; None when unlimited."""
    lim = (container.get("resources") or {}).get("limits") or {}
    cpu = cpu_millis(lim["cpu"]) if "cpu" in lim else None
    mem = memory_bytes(lim["memory"]) if "memory" in lim else None
    return cpu or None, mem or None


def run_as(pod: dict, container: dict, image_config: dict) -> tuple[int | None, int | None]:
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    if uid is None and image_config.get("User"):
        user, _, group = str(image_config["User"]).partition(":")
        if user.isdigit():
            uid = int(user)
        if group.isdigit() and gid is None:
            gid = int(group)
    return uid, gid


def hosts_file(pod: dict, pod_ip: str) -> str:
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    hostname = spec.get("hostname") or name
    if spec.get("subdomain"):
        lines.append(f"{pod_ip}\t{hostname}.{spec['subdomain']}.{pod['metadata'].get('namespace', 'default')}.svc\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    for ha in spec.get("hostAliases") or []:
        lines.append(f"{ha['ip']}\t" + "\t".join(ha.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def resolv_conf(pod: dict, cluster_dns: str | None, domain: str) -> str:
    spec = pod.get("spec") or {}
    ns = pod["metadata"].get("namespace", "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    cfg = spec.get("dnsConfig") or {}
    servers: list[str] = []
    search: list[str] = []
    options = ["ndots:5"]
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = [cluster_dns] if cluster_dns else []
        search = [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
    elif policy == "None":
        options = []
    servers += cfg.get("nameservers") or []
    search += cfg.get("searches") or []
    for o in cfg.get("options") or []:
        options.append(o["name"] + (f":{o['value']}" if o.get("value") else ""))
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def termination_grace(pod: dict, default: float) -> float:
    meta_grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
    if meta_grace is not None:
        return float(meta_grace)
    v = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return float(v) if v is not None else default


def restart_policy(pod: dict) -> str:
    return (pod.get("spec") or {}).get("restartPolicy") or "Always"


def container_spec(pod: dict, name: str) -> dict[str, Any] | None:
    spec = pod.get("spec") or {}
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        if c["name"] == name:
            return c
    return None
