"""``RolloutView``: one Deployment's ReplicaSets (old and new, by revision) and their pods, live.

Built from the informer caches (ReplicaSets owned by the Deployment's uid, pods owned by each
ReplicaSet's uid) and recomputed when any of them changes, so a rolling update is seen moving:
the new ReplicaSet's pods appearing and going Ready while the old one's drain away.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from rich.text import Text
from textual.widgets import Static

from clusterctl.tui._kinds import KINDS, pod_style
from clusterctl.tui._source import ClusterSource

REVISION = "deployment.kubernetes.io/revision"


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def rollout_text(source: ClusterSource, key: str, now: datetime) -> Text:
    deploy = source.get("deployments", key)
    if deploy is None:
        return Text(f"deployment {key} is gone", style="red")
    meta, spec, status = deploy["metadata"], deploy.get("spec") or {}, deploy.get("status") or {}
    out = Text()
    out.append(f"Rollout of deployment {key}\n", style="bold")
    out.append(f"desired {spec.get('replicas', 1)}  updated {status.get('updatedReplicas', 0)}  ready {status.get('readyReplicas', 0)}"
               f"  available {status.get('availableReplicas', 0)}  unavailable {status.get('unavailableReplicas', 0)}\n")
    strategy = spec.get("strategy") or {}
    out.append(f"strategy {strategy.get('type', 'RollingUpdate')} {strategy.get('rollingUpdate') or ''}\n\n")
    sets = [rs for rs in source.list("replicasets") if _owned_by(rs, meta.get("uid", ""))]
    sets.sort(key=lambda rs: -int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0))
    pod_row = KINDS["pods"].row
    for i, rs in enumerate(sets):
        rev = (rs["metadata"].get("annotations") or {}).get(REVISION, "?")
        rs_status = rs.get("status") or {}
        label = "new" if i == 0 else "old"
        out.append(f"{label} ReplicaSet {rs['metadata']['name']} (revision {rev}): desired {(rs.get('spec') or {}).get('replicas', 0)}"
                   f" current {rs_status.get('replicas', 0)} ready {rs_status.get('readyReplicas', 0)}\n",
                   style="bold green" if i == 0 else "bold")
        pods = sorted((p for p in source.list("pods") if _owned_by(p, rs["metadata"].get("uid", ""))), key=lambda p: p["metadata"]["name"])
        for p in pods:
            cells = pod_row(p, now, source)
            out.append(f"    {cells[1]:<48} {cells[2]:<6} {cells[3]:<18} {cells[6]}\n", style=pod_style(p, cells))
        if not pods:
            out.append("    (no pods)\n", style="dim")
    if not sets:
        out.append("(no ReplicaSets yet)\n", style="dim")
    return out


class RolloutView(Static):
    can_focus = True
    DEFAULT_CSS = """
    RolloutView { height: 1fr; padding: 0 1; overflow-y: auto; }
    """

    def __init__(self, source: ClusterSource, key: str, *, now: Callable[[], datetime] | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.source = source
        self.key = key
        self.now = now or (lambda: datetime.now(timezone.utc))

    def on_mount(self) -> None:
        self.recompute()

    def recompute(self) -> None:
        self.update(rollout_text(self.source, self.key, self.now()))
