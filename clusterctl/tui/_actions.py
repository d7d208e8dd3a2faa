"""What the keys do to the cluster: scale, delete, cordon/uncordon, logs — through ``ApiClient``.

Describe and YAML are built from the informer caches (the object as last seen, plus its events
and, for a pending pod, the scheduler's per-node explanation), so they open instantly even on a
slow API server. Errors surface as ``TuiActionError`` with what and where.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import yaml

from clusterctl.client.errors import ClientError
from clusterctl.client.rest import ApiClient, Obj
from clusterctl.errors import ClusterctlError
from clusterctl.tui._source import ClusterSource


class TuiActionError(ClusterctlError):
    """An action from the TUI failed (or is not allowed: read-only mode, no API server)."""


def to_yaml(obj: Obj) -> str:
    clean = dict(obj)
    meta = dict(clean.get("metadata") or {})
    meta.pop("managedFields", None)
    clean["metadata"] = meta
    return yaml.safe_dump(clean, sort_keys=False, default_flow_style=False)


def describe(source: ClusterSource, resource: str, obj: Obj) -> str:
    """A ``kubectl describe``-like text: metadata, the spec/status highlights, conditions, events."""
    meta = obj.get("metadata") or {}
    lines = [f"Name:         {meta.get('name')}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:    {meta['namespace']}")
    lines.append(f"Kind:         {obj.get('kind')}")
    lines.append(f"Created:      {meta.get('creationTimestamp')}")
    for title, field in (("Labels", "labels"), ("Annotations", "annotations")):
        items = meta.get(field) or {}
        lines.append(f"{title + ':':<14}" + (", ".join(f"{k}={v}" for k, v in sorted(items.items())) or "<none>"))
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if resource == "pods":
        lines.append(f"Node:         {spec.get('nodeName') or '<none>'}")
        lines.append(f"Status:       {status.get('phase')}")
        lines.append(f"IP:           {status.get('podIP') or '<none>'}")
        lines.append("Containers:")
        states = {c.get("name"): c for c in status.get("containerStatuses") or []}
        for c in spec.get("containers") or []:
            st = states.get(c["name"], {})
            state = next(iter(st.get("state") or {}), "waiting")
            lines.append(f"  {c['name']}: image={c.get('image')} state={state} ready={st.get('ready', False)} restarts={st.get('restartCount', 0)}")
    elif "replicas" in spec:
        lines.append(f"Replicas:     {spec.get('replicas')} desired | {status.get('updatedReplicas', 0)} updated | "
                     f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
                     f"{status.get('readyReplicas', 0)} ready")
    elif resource == "nodes":
        lines.append(f"Unschedulable: {bool(spec.get('unschedulable'))}")
        lines.append(f"Allocatable:  {status.get('allocatable')}")
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for c in conditions:
            lines.append(f"  {c.get('type'):<22} {c.get('status'):<6} {c.get('reason') or ''}")
    if resource == "pods" and not spec.get("nodeName"):
        lines.append("")
        lines.append("Scheduling (why is it pending):")
        lines.extend("  " + line for line in explain_pending(source, obj).splitlines())
    events = [e for e in source.list("events") if (e.get("involvedObject") or {}).get("uid") == meta.get("uid")
              or ((e.get("involvedObject") or {}).get("name") == meta.get("name")
                  and (e.get("involvedObject") or {}).get("kind") == obj.get("kind"))]
    lines.append("Events:" + ("  <none>" if not events else ""))
    for e in sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or "")):
        lines.append(f"  {e.get('type', ''):<8} {e.get('reason', ''):<18} {(e.get('message') or '').strip()}")
    return "\n".join(lines) + "\n"


def explain_pending(source: ClusterSource, pod: Obj) -> str:
    """The scheduler's per-node table for ``pod``, from the informer caches."""
    from clusterctl.scheduler.explain import explain, render_explain_table
    try:
        return render_explain_table(explain(pod, source.list("nodes"), source.list("pods")))
    except Exception as exc:  # the explanation is advice; a view must never die of it
        return f"(no explanation: {type(exc).__name__}: {exc})"


class ClusterActions:
    """Writes and log reads; ``readonly`` refuses every write."""

    def __init__(self, client: ApiClient | None, *, readonly: bool = False) -> None:
        self.client = client
        self.readonly = readonly

    def _writable(self, what: str) -> ApiClient:
        if self.readonly:
            raise TuiActionError(f"{what}: read-only mode")
        return self._client(what)

    def _client(self, what: str) -> ApiClient:
        if self.client is None:
            raise TuiActionError(f"{what}: no API server (static data)")
        return self.client

    async def scale(self, resource: str, obj: Obj, replicas: int) -> None:
        meta = obj["metadata"]
        what = f"scale {resource}/{meta['name']} to {replicas}"
        try:
            await self._writable(what).scale(resource, meta["name"], replicas, namespace=meta.get("namespace"))
        except ClientError as exc:
            raise TuiActionError(f"{what}: {exc}") from exc

    async def delete(self, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        what = f"delete {resource}/{meta['name']}"
        try:
            await self._writable(what).delete(resource, meta["name"], namespace=meta.get("namespace"), propagation_policy="Background")
        except ClientError as exc:
            raise TuiActionError(f"{what}: {exc}") from exc

    async def cordon(self, node: Obj, unschedulable: bool) -> None:
        name = node["metadata"]["name"]
        what = f"{'cordon' if unschedulable else 'uncordon'} node/{name}"
        try:
            await self._writable(what).patch("nodes", name, {"spec": {"unschedulable": unschedulable or None}})
        except ClientError as exc:
            raise TuiActionError(f"{what}: {exc}") from exc

    async def logs(self, pod: Obj, *, container: str | None, previous: bool, timestamps: bool, tail: int = 500) -> str:
        meta = pod["metadata"]
        what = f"logs of pod {meta.get('namespace')}/{meta['name']}" + (f" container {container}" if container else "")
        try:
            return await self._client(what).log(meta["namespace"], meta["name"], container=container, tail_lines=tail,
                                                previous=previous, timestamps=timestamps)
        except ClientError as exc:
            raise TuiActionError(f"{what}: {exc}") from exc

    async def follow(self, pod: Obj, *, container: str | None) -> AsyncIterator[bytes]:
        meta = pod["metadata"]
        what = f"follow logs of pod {meta.get('namespace')}/{meta['name']}"
        try:
            async for chunk in self._client(what).log_stream(meta["namespace"], meta["name"], container=container, tail_lines=0):
                yield chunk
        except ClientError as exc:
            raise TuiActionError(f"{what}: {exc}") from exc
