"""``run``, ``expose``, ``scale`` and ``set image``: the imperative shortcuts for workloads.

``run NAME --image=I`` creates a Deployment (labels ``app=NAME``), as kubectl's ``run`` did
before 1.18 and as the seed's walkthrough expects (``run`` then ``get deployments``);
``--restart=Never`` creates a bare Pod like today's ``kubectl run``. ``expose`` builds a Service
from the workload's own selector; ``scale`` goes through the ``scale`` subresource; ``set image``
is a strategic merge patch on the pod template's containers (merged by name by the server).
"""

from __future__ import annotations

import argparse
from typing import Any

from clusterctl.errors import UsageError
from clusterctl.kubectl import printers
from clusterctl.kubectl.apply import deployment_object, display, dry_params
from clusterctl.kubectl.get import add_output_flags, parse_targets
from clusterctl.kubectl.session import Session, retry_on_conflict

FMT = argparse.RawDescriptionHelpFormatter


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("run", parents=parents, help="run an image as a Deployment (or a Pod with --restart=Never)", formatter_class=FMT,
                       epilog="examples:\n  clusterctl run web --image=registry.local/httpd:v1 --port=8080\n"
                              "  clusterctl run web --image=nginx --replicas=3\n  clusterctl run once --image=busybox --restart=Never -- echo hi\n")
    r.add_argument("name")
    r.add_argument("--image", required=True)
    r.add_argument("--port", type=int)
    r.add_argument("--replicas", type=int, default=1)
    r.add_argument("--restart", choices=["Always", "OnFailure", "Never"], default="Always")
    r.add_argument("--env", action="append", default=[], help="KEY=VALUE")
    r.add_argument("-l", "--labels", help="labels, e.g. app=web,tier=front (default app=NAME)")
    r.add_argument("--dry-run", choices=["none", "server", "client"], default="none", nargs="?", const="client")
    add_output_flags(r)
    r.add_argument("command", nargs="*", help="-- COMMAND [ARGS...]")
    r.set_defaults(func=run_run)

    e = sub.add_parser("expose", parents=parents, help="expose a deployment, pod or service as a new Service", formatter_class=FMT,
                       epilog="examples:\n  clusterctl expose deployment web --port=8080 --type=NodePort\n"
                              "  clusterctl expose deploy/web --port=80 --target-port=8080 --name=web-svc\n")
    e.add_argument("resources", nargs="+")
    e.add_argument("--port", type=int, help="the service port (default: the container's first port)")
    e.add_argument("--target-port", help="the container port (number or name)")
    e.add_argument("--type", choices=["ClusterIP", "NodePort", "LoadBalancer"], default="ClusterIP")
    e.add_argument("--name", help="the Service's name (default: the workload's)")
    e.add_argument("--protocol", default="TCP")
    e.add_argument("--node-port", type=int)
    e.add_argument("--dry-run", choices=["none", "server", "client"], default="none", nargs="?", const="client")
    add_output_flags(e)
    e.set_defaults(func=run_expose)

    s = sub.add_parser("scale", parents=parents, help="set a new size for a deployment, replicaset or statefulset", formatter_class=FMT,
                       epilog="examples:\n  clusterctl scale deployment web --replicas=4\n  clusterctl scale deploy/web deploy/api --replicas=0\n")
    s.add_argument("resources", nargs="+")
    s.add_argument("--replicas", type=int, required=True)
    s.set_defaults(func=run_scale)

    st = sub.add_parser("set", parents=parents, help="set specific features on objects (set image)", formatter_class=FMT,
                        epilog="examples:\n  clusterctl set image deployment/web web=registry.local/httpd:v2\n"
                               "  clusterctl set image deploy web *=nginx:1.27\n")
    st.add_argument("what", choices=["image"])
    st.add_argument("args", nargs="+", help="TYPE/NAME CONTAINER=IMAGE ...")
    st.set_defaults(func=run_set_image)


async def run_run(args: argparse.Namespace, s: Session) -> int:
    labels = dict(kv.split("=", 1) for kv in args.labels.split(",")) if args.labels else {"app": args.name}
    env = [{"name": k, "value": v} for k, _, v in (e.partition("=") for e in args.env)]
    if args.restart == "Always":
        obj = deployment_object(args.name, [args.image], args.replicas, args.port)
        obj["metadata"]["labels"] = labels
        obj["spec"]["selector"]["matchLabels"] = labels
        obj["spec"]["template"]["metadata"]["labels"] = labels
        container = obj["spec"]["template"]["spec"]["containers"][0]
    else:
        container = {"name": args.name, "image": args.image}
        if args.port:
            container["ports"] = [{"containerPort": args.port}]
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": args.name, "labels": {"run": args.name} if not args.labels else labels},
               "spec": {"restartPolicy": args.restart, "containers": [container]}}
    if env:
        container["env"] = env
    if args.command:
        container["args"] = list(args.command)
    rt = await s.client.resource_type(obj["kind"], obj["apiVersion"])
    result = obj if args.dry_run == "client" else await s.client.request(
        "POST", rt.path(namespace=s.namespace), params=dry_params(args.dry_run), body=obj)
    if args.output:
        print(printers.print_objects([result], args.output, single=True))
    else:
        print(f"{display(rt, args.name)} created")
    return 0


def _selector_of(obj: dict) -> dict[str, str]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return dict((obj.get("metadata") or {}).get("labels") or {})
    if kind == "Service":
        return dict(spec.get("selector") or {})
    sel = spec.get("selector") or {}
    if sel.get("matchExpressions"):
        raise UsageError(f"couldn't retrieve selectors via --selector flag or introspection: the {kind} uses matchExpressions")
    return dict(sel.get("matchLabels") or sel)


def _ports_of(obj: dict) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Service":
        return [{"port": p.get("port"), "protocol": p.get("protocol", "TCP"), "targetPort": p.get("targetPort", p.get("port"))}
                for p in spec.get("ports") or []]
    pod_spec = spec if obj.get("kind") == "Pod" else ((spec.get("template") or {}).get("spec") or {})
    out = []
    for c in pod_spec.get("containers") or []:
        for p in c.get("ports") or []:
            out.append({"port": p["containerPort"], "protocol": p.get("protocol", "TCP"), "targetPort": p["containerPort"]})
    return out


async def run_expose(args: argparse.Namespace, s: Session) -> int:
    targets = parse_targets(args.resources)
    if len(targets) != 1 or len(targets[0][1]) != 1:
        raise UsageError("usage: clusterctl expose TYPE NAME | TYPE/NAME --port=P [--type=NodePort]")
    resource, [name] = targets[0]
    rt = await s.client.resource_type(resource)
    obj = await s.client.get(rt.plural, name, namespace=s.namespace, api_version=rt.api_version)
    obj.setdefault("kind", rt.kind)
    selector = _selector_of(obj)
    if not selector:
        raise UsageError(f"couldn't find a selector on {rt.singular} {name!r} to expose")
    if args.port is not None:
        target: Any = args.target_port or args.port
        ports = [{"port": args.port, "protocol": args.protocol,
                  "targetPort": int(target) if str(target).isdigit() else target}]
    else:
        ports = _ports_of(obj)
        if not ports:
            raise UsageError(f"couldn't find port via --port flag or introspection: {rt.singular} {name!r} declares no ports")
        if args.target_port:
            for p in ports:
                p["targetPort"] = int(args.target_port) if args.target_port.isdigit() else args.target_port
    if len(ports) > 1:
        for i, p in enumerate(ports):
            p["name"] = f"port-{i + 1}"
    if args.node_port:
        ports[0]["nodePort"] = args.node_port
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": args.name or name, "labels": dict((obj.get("metadata") or {}).get("labels") or selector)},
           "spec": {"selector": selector, "ports": ports, "type": args.type}}
    result = svc if args.dry_run == "client" else await s.client.request(
        "POST", f"/api/v1/namespaces/{s.namespace}/services", params=dry_params(args.dry_run), body=svc)
    if args.output:
        print(printers.print_objects([result], args.output, single=True))
    else:
        print(f"service/{svc['metadata']['name']} exposed")
    return 0


async def run_scale(args: argparse.Namespace, s: Session) -> int:
    for resource, names in parse_targets(args.resources):
        rt = await s.client.resource_type(resource)
        if not names:
            raise UsageError("usage: clusterctl scale TYPE NAME --replicas=N")
        for name in names:
            await retry_on_conflict(lambda: s.client.scale(rt.plural, name, args.replicas, namespace=s.namespace))
            print(f"{display(rt, name)} scaled")
    return 0


async def run_set_image(args: argparse.Namespace, s: Session) -> int:
    words = [a for a in args.args if "=" not in a]
    pairs = [a for a in args.args if "=" in a]
    if not words or not pairs:
        raise UsageError("usage: clusterctl set image TYPE/NAME CONTAINER=IMAGE [...]")
    for resource, names in parse_targets(words):
        rt = await s.client.resource_type(resource)
        for name in names:
            obj = await s.client.get(rt.plural, name, namespace=s.namespace, api_version=rt.api_version)
            pod_spec = obj["spec"] if rt.kind == "Pod" else obj["spec"]["template"]["spec"]
            containers = pod_spec.get("containers") or []
            init = pod_spec.get("initContainers") or []
            patch_c: list[dict] = []
            patch_i: list[dict] = []
            for pair in pairs:
                cname, _, image = pair.partition("=")
                hit = False
                for group, out in ((containers, patch_c), (init, patch_i)):
                    for c in group:
                        if cname in ("*", c["name"]):
                            out.append({"name": c["name"], "image": image})
                            hit = True
                if not hit:
                    raise UsageError(f'unable to find container named "{cname}" in {rt.singular} {name!r}')
            spec_patch: dict[str, Any] = {}
            if patch_c:
                spec_patch["containers"] = patch_c
            if patch_i:
                spec_patch["initContainers"] = patch_i
            body = {"spec": spec_patch} if rt.kind == "Pod" else {"spec": {"template": {"spec": spec_patch}}}
            await retry_on_conflict(lambda: s.client.patch(rt.plural, name, body, namespace=s.namespace, type="strategic", api_version=rt.api_version))
            print(f"{display(rt, name)} image updated")
    return 0
