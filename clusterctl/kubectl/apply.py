"""``apply``, ``create``, ``delete`` and ``patch``: objects in from manifests or flags, out by name.

``apply`` is kubectl's client-side apply: the object is stored with the
``kubectl.kubernetes.io/last-applied-configuration`` annotation; on the next apply a patch is
computed three-ways (last applied, new manifest, live object): fields that changed are set,
fields dropped from the manifest since the last apply are nulled — and it is sent as a
*strategic* merge patch so the server merges lists such as ``containers`` by name (as kubectl's
patch does). Validation, defaulting and ``--dry-run=server`` are the API server's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

from clusterctl.client.errors import NotFound
from clusterctl.client.resources import ResourceType
from clusterctl.errors import UsageError
from clusterctl.kubectl import printers
from clusterctl.kubectl.get import add_output_flags, parse_targets
from clusterctl.kubectl.manifests import read_manifests
from clusterctl.kubectl.session import Session, retry_on_conflict

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("apply", parents=parents, help="apply a configuration to resources from files or stdin", formatter_class=fmt,
                       epilog="examples:\n  clusterctl apply -f web.yaml\n  clusterctl apply -f manifests/\n  cat app.yaml | clusterctl apply -f -\n"
                              "  clusterctl apply -f web.yaml --dry-run=server\n")
    _file_flags(p)
    add_output_flags(p)
    p.add_argument("--dry-run", choices=["none", "server", "client"], default="none", nargs="?", const="client")
    p.set_defaults(func=run_apply)

    c = sub.add_parser("create", parents=parents, help="create resources from files, or a deployment/namespace/configmap/secret", formatter_class=fmt,
                       epilog="examples:\n  clusterctl create -f web.yaml\n  clusterctl create deployment web --image=nginx --replicas=2 --port=80\n"
                              "  clusterctl create namespace demo\n  clusterctl create configmap cfg --from-literal=mode=fast\n"
                              "  clusterctl create secret generic pw --from-literal=password=s3cret\n"
                              "  clusterctl create secret docker-registry regcred --docker-server=reg.example.com:5000 \\\n"
                              "      --docker-username=deployer --docker-password=s3cret\n")
    c.add_argument("what", nargs="*", help="deployment|namespace|configmap|secret generic|docker-registry NAME")
    _file_flags(c, required=False)
    add_output_flags(c)
    c.add_argument("--image", action="append", default=[])
    c.add_argument("--replicas", type=int, default=1)
    c.add_argument("--port", type=int)
    c.add_argument("--from-literal", action="append", default=[])
    c.add_argument("--from-file", action="append", default=[])
    c.add_argument("--docker-server", default=DOCKER_HUB_SERVER, help="registry of a docker-registry secret (default: Docker Hub)")
    c.add_argument("--docker-username")
    c.add_argument("--docker-password")
    c.add_argument("--docker-email")
    c.add_argument("--dry-run", choices=["none", "server", "client"], default="none", nargs="?", const="client")
    c.set_defaults(func=run_create)

    d = sub.add_parser("delete", parents=parents, help="delete resources by name, label selector or file", formatter_class=fmt,
                       epilog="examples:\n  clusterctl delete pod web-1\n  clusterctl delete deploy/web svc/web\n  clusterctl delete -f web.yaml\n"
                              "  clusterctl delete pods -l app=web\n  clusterctl delete pods --all -n demo\n")
    d.add_argument("resources", nargs="*")
    _file_flags(d, required=False)
    d.add_argument("-l", "--selector")
    d.add_argument("--all", action="store_true", help="delete every object of the type in the namespace")
    d.add_argument("-A", "--all-namespaces", action="store_true")
    d.add_argument("--grace-period", type=int, default=None)
    d.add_argument("--now", action="store_true", help="same as --grace-period=1")
    d.add_argument("--force", action="store_true", help="with --grace-period=0: delete at once")
    d.add_argument("--wait", default="true", choices=["true", "false"], nargs="?", const="true", help="wait until the objects are gone")
    d.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    d.add_argument("--ignore-not-found", action="store_true")
    d.add_argument("-o", "--output", default="")
    d.set_defaults(func=run_delete)

    pa = sub.add_parser("patch", parents=parents, help="update fields of a resource with a patch", formatter_class=fmt,
                        epilog="examples:\n  clusterctl patch deploy web -p '{\"spec\":{\"replicas\":3}}'\n"
                               "  clusterctl patch node n1 --type=json -p '[{\"op\":\"add\",\"path\":\"/metadata/labels/x\",\"value\":\"y\"}]'\n")
    pa.add_argument("resources", nargs="+")
    pa.add_argument("-p", "--patch", required=True)
    pa.add_argument("--type", choices=["strategic", "merge", "json"], default="strategic")
    pa.add_argument("--subresource")
    add_output_flags(pa)
    pa.set_defaults(func=run_patch)


def _file_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-f", "--filename", action="append", default=[], required=required, help="file, folder or - (stdin)")
    p.add_argument("-R", "--recursive", action="store_true", help="walk folders given with -f recursively")


def display(rt: ResourceType, name: str) -> str:
    return f"{rt.singular}.{rt.group}/{name}" if rt.group else f"{rt.singular}/{name}"


def dry_params(dry_run: str) -> dict[str, Any]:
    return {"dryRun": "All"} if dry_run == "server" else {}


def _suffix(dry_run: str) -> str:
    return {"server": " (server dry run)", "client": " (dry run)"}.get(dry_run, "")


def three_way(last: Any, new: Any, live: Any) -> dict[str, Any]:
    """A merge patch taking ``live`` to ``new`` that also removes what ``last`` had and ``new`` dropped."""
    patch: dict[str, Any] = {}
    last = last if isinstance(last, dict) else {}
    live = live if isinstance(live, dict) else {}
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            sub = three_way(last.get(key), value, live[key])
            if sub:
                patch[key] = sub
        elif not _subset(value, live.get(key)):
            patch[key] = value
    for key in last:
        if key not in new and key in live:
            patch[key] = None
    return patch


def _subset(new: Any, live: Any) -> bool:
    """True when ``live`` already says everything ``new`` says (the server may have added defaults)."""
    if isinstance(new, dict):
        return isinstance(live, dict) and all(_subset(v, live.get(k)) for k, v in new.items())
    if isinstance(new, list):
        return isinstance(live, list) and len(new) == len(live) and all(_subset(a, b) for a, b in zip(new, live))
    return new == live


def _last_applied_text(obj: dict) -> str:
    clean = json.loads(json.dumps(obj))
    ann = (clean.get("metadata") or {}).get("annotations") or {}
    ann.pop(LAST_APPLIED, None)
    return json.dumps(clean, separators=(",", ":"), sort_keys=True)


async def apply_object(s: Session, obj: dict, dry_run: str = "none") -> tuple[str, dict]:
    """Create or patch one object; returns (``created|configured|unchanged``, the result)."""
    return await retry_on_conflict(lambda: _apply_once(s, json.loads(json.dumps(obj)), dry_run))


async def _apply_once(s: Session, obj: dict, dry_run: str) -> tuple[str, dict]:
    rt = await s.client.resource_type(obj["kind"], obj["apiVersion"])
    meta = obj.setdefault("metadata", {})
    name = meta.get("name")
    if not name:
        raise UsageError(f"error: a {obj['kind']} in the manifests has no metadata.name")
    ns = (meta.get("namespace") or s.namespace) if rt.namespaced else None
    if rt.namespaced and s.explicit_namespace and meta.get("namespace") and meta["namespace"] != s.namespace:
        raise UsageError(f"the namespace from the provided object {meta['namespace']!r} does not match the namespace {s.namespace!r}. You must pass '--namespace={meta['namespace']}' to perform this operation.")
    applied = _last_applied_text(obj)
    meta.setdefault("annotations", {})[LAST_APPLIED] = applied + "\n"
    try:
        live = await s.client.get(rt.plural, name, namespace=ns, api_version=rt.api_version)
    except NotFound:
        if dry_run == "client":
            return "created", obj
        created = await s.client.request("POST", rt.path(namespace=ns), params=dry_params(dry_run), body=obj)
        return "created", created
    old = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(old) if old else {}
    except ValueError:
        last = {}
    patch = three_way(last, obj, live)
    patch.pop("status", None)
    if not patch:
        return "unchanged", live
    if dry_run == "client":
        return "configured", live
    result = await s.client.request("PATCH", rt.path(namespace=ns, name=name), params=dry_params(dry_run), body=patch,
                                    content_type="application/strategic-merge-patch+json")
    return "configured", result


async def run_apply(args: argparse.Namespace, s: Session) -> int:
    objs = read_manifests(args.filename, recursive=args.recursive)
    results = []
    for obj in objs:
        rt = await s.client.resource_type(obj["kind"], obj["apiVersion"])
        verb, result = await apply_object(s, obj, args.dry_run)
        results.append(result)
        if not args.output:
            print(f"{display(rt, obj['metadata']['name'])} {verb}{_suffix(args.dry_run)}")
    if args.output:
        print(printers.print_objects(results, args.output, single=len(results) == 1))
    return 0


# ----------------------------------------------------------------------- create


def deployment_object(name: str, images: list[str], replicas: int, port: int | None, namespace: str | None = None) -> dict:
    """What ``kubectl create deployment`` builds: label ``app=NAME``, one container per image."""
    containers = []
    for image in images:
        cname = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] if len(images) > 1 else name
        c: dict[str, Any] = {"name": cname, "image": image}
        if port:
            c["ports"] = [{"containerPort": port}]
        containers.append(c)
    meta: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}}


def _literal_data(literals: list[str], files: list[str]) -> dict[str, str]:
    data: dict[str, str] = {}
    for lit in literals:
        key, sep, value = lit.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid literal source {lit!r}, expected key=value")
        data[key] = value
    for f in files:
        key, sep, path = f.partition("=")
        if not sep:
            key, path = Path(f).name, f
        data[key] = Path(path).read_text()
    return data


DOCKER_HUB_SERVER = "https://index.docker.io/v1/"


def docker_registry_secret(rest: list[str], args: argparse.Namespace) -> dict:
    """kubectl's ``create secret docker-registry``: a ``kubernetes.io/dockerconfigjson`` Secret for one registry."""
    if len(rest) != 1:
        raise UsageError("usage: clusterctl create secret docker-registry NAME --docker-server=S --docker-username=U "
                         "--docker-password=P [--docker-email=E]")
    if not args.docker_username or args.docker_password is None or not args.docker_server:
        raise UsageError("either --from-file or the combination of --docker-username, --docker-password and "
                         "--docker-server is required")
    entry = {"username": args.docker_username, "password": args.docker_password,
             "auth": base64.b64encode(f"{args.docker_username}:{args.docker_password}".encode()).decode()}
    if args.docker_email:
        entry["email"] = args.docker_email
    config = json.dumps({"auths": {args.docker_server: entry}}, separators=(",", ":"))
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": rest[0]}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}}


def build_create_object(args: argparse.Namespace, namespace: str) -> dict:
    what = args.what
    kind = what[0]
    if kind in ("deployment", "deploy"):
        if len(what) < 2 or not args.image:
            raise UsageError("usage: clusterctl create deployment NAME --image=IMAGE [--replicas=N] [--port=P]")
        return deployment_object(what[1], args.image, args.replicas, args.port)
    if kind in ("namespace", "ns"):
        if len(what) < 2:
            raise UsageError("usage: clusterctl create namespace NAME")
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": what[1]}}
    if kind in ("configmap", "cm"):
        if len(what) < 2:
            raise UsageError("usage: clusterctl create configmap NAME [--from-literal=k=v] [--from-file=[k=]path]")
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": what[1]},
                "data": _literal_data(args.from_literal, args.from_file)}
    if kind == "secret" and len(what) >= 2 and what[1] == "docker-registry":
        return docker_registry_secret(what[2:], args)
    if kind == "secret":
        if len(what) < 3 or what[1] != "generic":
            raise UsageError("usage: clusterctl create secret generic NAME [--from-literal=k=v] [--from-file=[k=]path]\n"
                             "       clusterctl create secret docker-registry NAME --docker-server=S --docker-username=U "
                             "--docker-password=P [--docker-email=E]")
        data = _literal_data(args.from_literal, args.from_file)
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": what[2]}, "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    raise UsageError(f"clusterctl create: unknown kind {kind!r} (deployment, namespace, configmap, secret generic|docker-registry), or use -f")


async def run_create(args: argparse.Namespace, s: Session) -> int:
    if args.what:
        objs = [build_create_object(args, s.namespace)]
    else:
        objs = read_manifests(args.filename, recursive=args.recursive)
    results = []
    for obj in objs:
        rt = await s.client.resource_type(obj["kind"], obj["apiVersion"])
        ns = ((obj.get("metadata") or {}).get("namespace") or s.namespace) if rt.namespaced else None
        if args.dry_run == "client":
            result = obj
        else:
            result = await s.client.request("POST", rt.path(namespace=ns), params=dry_params(args.dry_run), body=obj)
        results.append(result)
        if not args.output:
            print(f"{display(rt, obj['metadata']['name'])} created{_suffix(args.dry_run)}")
    if args.output:
        print(printers.print_objects(results, args.output, single=len(results) == 1))
    return 0


# ----------------------------------------------------------------------- delete


async def _targets(args: argparse.Namespace, s: Session) -> list[tuple[ResourceType, str | None, str]]:
    out: list[tuple[ResourceType, str | None, str]] = []
    if args.filename:
        for obj in read_manifests(args.filename, recursive=args.recursive):
            rt = await s.client.resource_type(obj["kind"], obj["apiVersion"])
            ns = ((obj.get("metadata") or {}).get("namespace") or s.namespace) if rt.namespaced else None
            out.append((rt, ns, obj["metadata"]["name"]))
        return out
    for resource, names in parse_targets(args.resources):
        rt = await s.client.resource_type(resource)
        if names:
            if args.selector or args.all:
                raise UsageError("names cannot be given together with --selector or --all")
            out.extend((rt, s.namespace if rt.namespaced else None, n) for n in names)
            continue
        if not (args.selector or args.all):
            raise UsageError("resource(s) were provided, but no name was specified (use a name, -l SELECTOR or --all)")
        listed = await s.client.list(rt.plural, namespace=s.list_namespace() if rt.namespaced else None,
                                     label_selector=args.selector, api_version=rt.api_version)
        out.extend((rt, (i["metadata"].get("namespace")) if rt.namespaced else None, i["metadata"]["name"]) for i in listed["items"])
    return out


async def run_delete(args: argparse.Namespace, s: Session) -> int:
    grace = 1 if args.now else args.grace_period
    targets = await _targets(args, s)
    if not targets and not args.filename:
        print(f"No resources found{'' if s.all_namespaces else f' in {s.namespace} namespace'}.")
        return 0
    deleted = []
    status = 0
    for rt, ns, name in targets:
        try:
            obj = await s.client.request("DELETE", rt.path(namespace=ns, name=name),
                                         body={"apiVersion": "v1", "kind": "DeleteOptions",
                                               **({"gracePeriodSeconds": grace} if grace is not None else {}),
                                               **({"propagationPolicy": "Background"} if rt.kind != "Pod" else {})})
        except NotFound as exc:
            if not args.ignore_not_found:
                from clusterctl.kubectl.cli import server_error_line
                print(server_error_line(exc), file=sys.stderr)
                status = 1
            continue
        deleted.append((rt, ns, name, (obj.get("metadata") or {}).get("uid")))
        if args.output == "name":
            print(display(rt, name))
        else:
            print(f'{rt.singular + ("." + rt.group if rt.group else "")} "{name}" deleted')
    if args.wait == "true":
        await wait_gone(s, deleted, args.timeout)
    return status


async def wait_gone(s: Session, items: list[tuple[ResourceType, str | None, str, str | None]], timeout: float, interval: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = list(items)
    while pending:
        still = []
        for rt, ns, name, uid in pending:
            try:
                obj = await s.client.get(rt.plural, name, namespace=ns, api_version=rt.api_version)
            except NotFound:
                continue
            if uid and (obj.get("metadata") or {}).get("uid") != uid:
                continue
            still.append((rt, ns, name, uid))
        pending = still
        if not pending:
            return
        if loop.time() > deadline:
            names = ", ".join(f"{rt.plural}/{n}" for rt, _, n, _ in pending)
            raise UsageError(f"timed out waiting for the deletion of {names}")
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 1.0)


# ----------------------------------------------------------------------- patch


async def run_patch(args: argparse.Namespace, s: Session) -> int:
    try:
        body = json.loads(args.patch)
    except ValueError:
        import yaml
        body = yaml.safe_load(args.patch)
    for resource, names in parse_targets(args.resources):
        rt = await s.client.resource_type(resource)
        for name in names:
            result = await s.client.patch(rt.plural, name, body, namespace=s.namespace if rt.namespaced else None,
                                          type=args.type, subresource=args.subresource, api_version=rt.api_version)
            if args.output:
                print(printers.print_objects([result], args.output, single=True))
            else:
                print(f"{display(rt, name)} patched")
    return 0
