"""``label`` and ``annotate``: set (``k=v``) or remove (``k-``) labels/annotations with a merge patch.

Like kubectl, changing an existing key needs ``--overwrite`` (checked on the object read just
before the patch); ``--resource-version`` makes the patch conditional (409 if it changed).
"""

from __future__ import annotations

import argparse

from clusterctl.errors import UsageError
from clusterctl.kubectl.apply import display
from clusterctl.kubectl.get import parse_targets
from clusterctl.kubectl.session import Session, retry_on_conflict


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    for verb, field in (("label", "labels"), ("annotate", "annotations")):
        p = sub.add_parser(verb, parents=parents, help=f"update the {field} on resources", formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=f"examples:\n  clusterctl {verb} pods web-1 tier=front\n  clusterctl {verb} node/node-1 pool=batch --overwrite\n"
                                  f"  clusterctl {verb} deploy web tier-            # remove a key\n  clusterctl {verb} pods --all -n demo owner=me\n")
        p.add_argument("args", nargs="+", help="TYPE NAME... | TYPE/NAME... KEY=VALUE... KEY-...")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("--all", action="store_true")
        p.add_argument("-l", "--selector")
        p.add_argument("-A", "--all-namespaces", action="store_true")
        p.add_argument("--resource-version", help="only if the object is still at this resourceVersion")
        p.set_defaults(func=run, field=field)


def split_changes(words: list[str]) -> tuple[list[str], dict[str, str | None]]:
    targets, changes = [], {}
    for w in words:
        if "=" in w:
            k, _, v = w.partition("=")
            changes[k] = v
        elif w.endswith("-") and len(targets) >= 1:  # names never end in "-"
            changes[w[:-1]] = None
        else:
            targets.append(w)
    if not changes:
        raise UsageError("at least one KEY=VALUE or KEY- is required")
    return targets, changes


async def run(args: argparse.Namespace, s: Session) -> int:
    targets, changes = split_changes(args.args)
    verb = "labeled" if args.field == "labels" else "annotated"
    for resource, names in parse_targets(targets):
        rt = await s.client.resource_type(resource)
        if names:
            objs = [await s.client.get(rt.plural, n, namespace=s.namespace if rt.namespaced else None, api_version=rt.api_version) for n in names]
        elif args.all or args.selector:
            objs = (await s.client.list(rt.plural, namespace=s.list_namespace() if rt.namespaced else None,
                                        label_selector=args.selector, api_version=rt.api_version))["items"]
        else:
            raise UsageError("one or more resources must be specified as TYPE NAME or TYPE/NAME (or --all / -l)")
        for obj in objs:
            meta = obj["metadata"]
            current = meta.get(args.field) or {}
            if not args.overwrite:
                for k, v in changes.items():
                    if v is not None and k in current and current[k] != v:
                        raise UsageError(f"'{k}' already has a value ({current[k]}), and --overwrite is false")
            patch: dict = {"metadata": {args.field: changes}}
            if args.resource_version:
                patch["metadata"]["resourceVersion"] = args.resource_version
            await retry_on_conflict(lambda: s.client.patch(rt.plural, meta["name"], patch, namespace=meta.get("namespace"),
                                                           type="merge", api_version=rt.api_version))
            print(f"{display(rt, meta['name'])} {verb}")
    return 0
