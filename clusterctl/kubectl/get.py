"""``clusterctl get``: list or fetch objects and print the API server's own Table for them.

Human output (default and ``-o wide``) is the server-side ``Table`` (kubectl's Accept header),
laid out by ``printers``; ``-o yaml|json|name|jsonpath=`` print the objects themselves. ``-w``
keeps a watch open (with the same Table Accept) and prints one row per change.
Resource arguments are kubectl's: ``pods``, ``pods,svc``, ``pod/web``, ``deploy web api``, ``all``.
"""

from __future__ import annotations

import argparse
import sys

from clusterctl.client.resources import ResourceType
from clusterctl.errors import UsageError
from clusterctl.kubectl import printers
from clusterctl.kubectl.session import TABLE_ACCEPT, Session

ALL = ("pods", "services", "daemonsets", "deployments", "replicasets", "statefulsets", "jobs", "cronjobs")

EXAMPLES = """examples:
  clusterctl get pods                      # pods in the current namespace
  clusterctl get pods -A -o wide           # every namespace, with node and IP
  clusterctl get deploy,svc -l app=web     # two kinds, filtered by label
  clusterctl get pod web-1 -o yaml         # one object as YAML
  clusterctl get nodes -w                  # keep watching for changes
  clusterctl get pods -o jsonpath='{.items[*].metadata.name}'
"""


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get", parents=parents, help="display one or many resources", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("resources", nargs="*", help="TYPE[,TYPE...] [NAME...] or TYPE/NAME ...")
    add_output_flags(p)
    p.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", help="field selector, e.g. spec.nodeName=node-1")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--no-headers", action="store_true", help="omit the header line")
    p.set_defaults(func=run)


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="", help="wide|yaml|json|name|jsonpath=TEMPLATE")


def parse_targets(words: list[str]) -> list[tuple[str, list[str]]]:
    """``["pods,svc"]`` -> [(pods, []), (svc, [])]; ``["pod/a", "svc/b"]``; ``["deploy", "a", "b"]``."""
    if not words:
        raise UsageError("you must specify the type of resource to get, e.g. `clusterctl get pods` (see `clusterctl api-resources`)")
    if all("/" in w for w in words):
        out: list[tuple[str, list[str]]] = []
        for w in words:
            kind, _, name = w.partition("/")
            if out and out[-1][0] == kind:
                out[-1][1].append(name)
            else:
                out.append((kind, [name]))
        return out
    if any("/" in w for w in words):
        raise UsageError("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form")
    kinds = [k for k in words[0].split(",") if k]
    expanded: list[str] = []
    for k in kinds:
        expanded.extend(ALL if k == "all" else [k])
    names = words[1:]
    if names and len(expanded) > 1:
        raise UsageError("names can only be given with a single resource type")
    return [(k, list(names)) for k in expanded]


async def run(args: argparse.Namespace, s: Session) -> int:
    targets = parse_targets(args.resources)
    output = args.output or ""
    human = output in ("", "wide")
    multi_kind = len(targets) > 1
    objects: list[dict] = []
    single = len(targets) == 1 and len(targets[0][1]) == 1
    first = True
    list_rv: str | None = None  # where a -w picks up: right after what was printed
    widths: list[int] = []
    for resource, names in targets:
        rt = await s.client.resource_type(resource)
        ns = s.namespace if rt.namespaced else None
        if human:
            table = await _table(s, rt, names, args)
            list_rv = (table.get("metadata") or {}).get("resourceVersion") or None
            if not table.get("rows") and (multi_kind or args.watch):
                continue
            header, rows = printers.table_rows(table, wide=output == "wide", show_labels=args.show_labels,
                                               namespace_column=s.all_namespaces and rt.namespaced and not names,
                                               kind_prefix=(rt.singular if not rt.group else f"{rt.singular}.{rt.group}") if multi_kind else None)
            if not rows:
                where = f" in {s.namespace} namespace" if rt.namespaced and not s.all_namespaces else ""
                print(f"No resources found{where}.", file=sys.stderr)
                continue
            if not first:
                print()
            first = False
            widths = printers.column_widths(header, rows)
            text = printers.format_rows(header, rows)
            print("\n".join(text.splitlines()[1:]) if args.no_headers else text)
        elif names:
            for name in names:
                objects.append(await s.client.get(rt.plural, name, namespace=ns, api_version=rt.api_version))
        else:
            result = await s.client.list(rt.plural, namespace=s.list_namespace() if rt.namespaced else None,
                                         label_selector=args.selector, field_selector=args.field_selector, api_version=rt.api_version)
            list_rv = (result.get("metadata") or {}).get("resourceVersion") or None
            kind = rt.kind
            for item in result["items"]:
                item.setdefault("apiVersion", rt.api_version)
                item.setdefault("kind", kind)
            objects.extend(result["items"])
    if not human:
        text = printers.print_objects(objects, output, single=single)
        if text:
            print(text, end="" if output.startswith("jsonpath=") else "\n")
    if args.watch:
        if len(targets) != 1:
            raise UsageError("you may only specify a single resource type with --watch")
        await _watch(s, await s.client.resource_type(targets[0][0]), targets[0][1], args, list_rv if not targets[0][1] else None, widths)
    return 0


async def _table(s: Session, rt: ResourceType, names: list[str], args: argparse.Namespace) -> dict:
    ns = (s.namespace if names else s.list_namespace()) if rt.namespaced else None
    if not names:
        return await s.get_with_accept(rt.path(namespace=ns), TABLE_ACCEPT,
                                       {"labelSelector": args.selector, "fieldSelector": args.field_selector})
    merged: dict = {}
    for name in names:
        t = await s.get_with_accept(rt.path(namespace=ns, name=name), TABLE_ACCEPT)
        if not merged:
            merged = t
        else:
            merged.setdefault("rows", []).extend(t.get("rows") or [])
    return merged


async def _watch(s: Session, rt: ResourceType, names: list[str], args: argparse.Namespace, rv: str | None,
                 widths: list[int]) -> None:
    ns = (s.namespace if names else s.list_namespace()) if rt.namespaced else None
    if rv is None:
        listing = await s.client.list(rt.plural, namespace=ns, label_selector=args.selector, limit=1, api_version=rt.api_version)
        rv = (listing.get("metadata") or {}).get("resourceVersion")
    params = {"labelSelector": args.selector, "fieldSelector": args.field_selector, "resourceVersion": rv}
    if len(names) == 1:
        params["fieldSelector"] = f"metadata.name={names[0]}"
    human = (args.output or "") in ("", "wide")
    async for event in s.watch_lines(rt.path(namespace=ns), TABLE_ACCEPT if human else "application/json", params):
        obj = event.get("object") or {}
        if event.get("type") in ("BOOKMARK", "ERROR"):
            continue
        if human:
            _, rows = printers.table_rows(obj, wide=args.output == "wide", show_labels=args.show_labels,
                                          namespace_column=s.all_namespaces and rt.namespaced)
            for row in rows:
                print(printers.format_row(row, widths), flush=True)
        else:
            print(printers.print_objects([obj], args.output, single=True), flush=True)
