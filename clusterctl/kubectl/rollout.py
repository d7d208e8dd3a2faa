"""``rollout status|history|undo|pause|resume|restart`` for Deployments (status also DaemonSets and
StatefulSets), reading the Deployment controller's own bookkeeping: ``status`` fields and the
``deployment.kubernetes.io/revision`` annotation on its ReplicaSets. ``undo`` copies the chosen
revision's pod template back (minus ``pod-template-hash``), as kubectl's rollback does.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone

from clusterctl.client.errors import ApiConnectionError
from clusterctl.errors import UsageError
from clusterctl.kubectl.apply import display
from clusterctl.kubectl.get import parse_targets
from clusterctl.kubectl.session import Session

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rollout", parents=parents, help="manage the rollout of a deployment", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  clusterctl rollout status deployment/web\n  clusterctl rollout history deploy/web\n"
                              "  clusterctl rollout undo deploy/web [--to-revision=1]\n  clusterctl rollout restart deploy/web\n"
                              "  clusterctl rollout pause deploy/web && clusterctl rollout resume deploy/web\n")
    p.add_argument("action", choices=["status", "history", "undo", "pause", "resume", "restart"])
    p.add_argument("resources", nargs="+")
    p.add_argument("--to-revision", type=int, default=0)
    p.add_argument("--revision", type=int, default=0, help="history: show one revision's template")
    p.add_argument("--timeout", type=float, default=0, help="status: give up after this many seconds (0 = forever)")
    p.add_argument("-w", "--watch", default="true", choices=["true", "false"], nargs="?", const="true")
    p.set_defaults(func=run)


def deployment_progress(d: dict) -> tuple[bool, str]:
    """kubectl's DeploymentStatusViewer: (done, message)."""
    name = d["metadata"]["name"]
    spec, st = d.get("spec") or {}, d.get("status") or {}
    if (d["metadata"].get("generation") or 0) > (st.get("observedGeneration") or 0):
        return False, "Waiting for deployment spec update to be observed..."
    for c in st.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            raise UsageError(f'deployment "{name}" exceeded its progress deadline')
    want = spec.get("replicas", 1)
    updated, total, avail = st.get("updatedReplicas") or 0, st.get("replicas") or 0, st.get("availableReplicas") or 0
    if updated < want:
        return False, f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new replicas have been updated...'
    if total > updated:
        return False, f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are pending termination...'
    if avail < updated:
        return False, f'Waiting for deployment "{name}" rollout to finish: {avail} of {updated} updated replicas are available...'
    return True, f'deployment "{name}" successfully rolled out'


def set_progress(obj: dict) -> tuple[bool, str]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    st = obj.get("status") or {}
    if (obj["metadata"].get("generation") or 0) > (st.get("observedGeneration") or 0):
        return False, f"Waiting for {kind.lower()} spec update to be observed..."
    if kind == "DaemonSet":
        want, upd, avail = st.get("desiredNumberScheduled") or 0, st.get("updatedNumberScheduled") or 0, st.get("numberAvailable") or 0
        if upd < want:
            return False, f'Waiting for daemon set "{name}" rollout to finish: {upd} out of {want} new pods have been updated...'
        if avail < want:
            return False, f'Waiting for daemon set "{name}" rollout to finish: {avail} of {want} updated pods are available...'
        return True, f'daemon set "{name}" successfully rolled out'
    want, ready, upd = (obj.get("spec") or {}).get("replicas", 1), st.get("readyReplicas") or 0, st.get("updatedReplicas") or 0
    if ready < want:
        return False, f"Waiting for {want - ready} pods to be ready..."
    if upd < want:
        return False, f"Waiting for partitioned roll out to finish: {upd} out of {want} new pods have been updated..."
    return True, f"statefulset rolling update complete {want} pods at revision {st.get('updateRevision', '')}..."


async def wait_rollout(s: Session, rt, name: str, *, timeout: float = 0, watch: bool = True, out=print) -> bool:
    """Print progress lines until the rollout is done; False if ``watch`` is off and it is not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    last = None
    while True:
        obj = await s.client.get(rt.plural, name, namespace=s.namespace, api_version=rt.api_version)
        obj.setdefault("kind", rt.kind)
        done, msg = deployment_progress(obj) if rt.kind == "Deployment" else set_progress(obj)
        if msg != last:
            out(msg)
            last = msg
        if done:
            return True
        if not watch:
            return False
        rv = obj["metadata"].get("resourceVersion")
        remaining = (deadline - loop.time()) if deadline else None
        if remaining is not None and remaining <= 0:
            raise UsageError(f"timed out waiting for the condition on {rt.plural}/{name}")
        try:
            stream = s.client.watch(rt.plural, namespace=s.namespace, field_selector=f"metadata.name={name}",
                                    resource_version=rv, timeout_seconds=30, api_version=rt.api_version)
            async with asyncio.timeout(min(remaining or 30, 30)):
                async for _type, _obj in stream:
                    break
        except (TimeoutError, ApiConnectionError):
            pass


async def _replicasets(s: Session, dep: dict) -> list[dict]:
    sel = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
    label = ",".join(f"{k}={v}" for k, v in sel.items())
    rss = (await s.client.list("replicasets", namespace=s.namespace, label_selector=label))["items"]
    uid = dep["metadata"]["uid"]
    owned = [r for r in rss if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])]
    return sorted(owned, key=lambda r: int((r["metadata"].get("annotations") or {}).get(REVISION, "0")))


def _revision(rs: dict) -> int:
    return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))


async def run(args: argparse.Namespace, s: Session) -> int:
    for resource, names in parse_targets(args.resources):
        rt = await s.client.resource_type(resource)
        if not names:
            raise UsageError(f"usage: clusterctl rollout {args.action} TYPE/NAME")
        for name in names:
            if args.action == "status":
                ok = await wait_rollout(s, rt, name, timeout=args.timeout, watch=args.watch == "true")
                if not ok:
                    return 1
                continue
            if rt.kind != "Deployment":
                raise UsageError(f"rollout {args.action} is supported for deployments only, not {rt.plural}")
            await _deployment_action(args, s, rt, name)
    return 0


async def _deployment_action(args: argparse.Namespace, s: Session, rt, name: str) -> None:
    ref = display(rt, name)
    if args.action in ("pause", "resume"):
        want = args.action == "pause"
        dep = await s.client.get(rt.plural, name, namespace=s.namespace)
        if bool(dep["spec"].get("paused")) == want:
            print(f"{ref} already {'paused' if want else 'resumed'}")
            return
        await s.client.patch(rt.plural, name, {"spec": {"paused": want}}, namespace=s.namespace)
        print(f"{ref} {'paused' if want else 'resumed'}")
        return
    if args.action == "restart":
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        await s.client.patch(rt.plural, name, {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}},
                             namespace=s.namespace, type="strategic")
        print(f"{ref} restarted")
        return
    dep = await s.client.get(rt.plural, name, namespace=s.namespace)
    rss = await _replicasets(s, dep)
    if args.action == "history":
        if args.revision:
            hit = [r for r in rss if _revision(r) == args.revision]
            if not hit:
                raise UsageError(f"unable to find the specified revision {args.revision}")
            from clusterctl.kubectl.printers import to_yaml
            print(f"{ref} with revision #{args.revision}\nPod Template:\n" + "\n".join("  " + line for line in to_yaml(hit[0]["spec"]["template"]).splitlines()))
            return
        print(ref)
        from clusterctl.kubectl.printers import format_rows
        rows = [[str(_revision(r)), (r["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>")] for r in rss]
        print(format_rows(["REVISION", "CHANGE-CAUSE"], rows))
        print()
        return
    # undo
    current = int((dep["metadata"].get("annotations") or {}).get(REVISION, "0"))
    if args.to_revision:
        target = next((r for r in rss if _revision(r) == args.to_revision), None)
        if target is None:
            raise UsageError(f"unable to find specified revision {args.to_revision} in history")
    else:
        older = [r for r in rss if _revision(r) != current]
        if not older:
            raise UsageError(f"no rollout history found for {ref}")
        target = older[-1]
    template = target["spec"]["template"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.pop("pod-template-hash", None)
    template.setdefault("metadata", {})["labels"] = labels
    if _revision(target) == current:
        print(f"{ref} skipped rollback (current template already matches revision {current})")
        return
    await s.client.patch(rt.plural, name, [{"op": "replace", "path": "/spec/template", "value": template}],
                         namespace=s.namespace, type="json")
    print(f"{ref} rolled back")
