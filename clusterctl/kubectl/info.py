"""``version``, ``api-resources``, ``explain-schedule`` and ``completion bash|zsh``.

``api-resources`` is the server's discovery (``/api/v1``, ``/apis/...``) in kubectl's columns;
``explain-schedule POD`` runs the scheduler's filters and scores for a pod against the current
nodes (``clusterctl.scheduler.explain``) and prints the per-node table; ``completion`` prints a
shell script that completes verbs, resource types and — by calling ``clusterctl get -o name`` —
object names.
"""

from __future__ import annotations

import argparse
import json

from clusterctl import __version__
from clusterctl.client.errors import ApiError
from clusterctl.errors import UsageError
from clusterctl.kubectl.printers import format_rows, to_yaml
from clusterctl.kubectl.session import Session

FMT = argparse.RawDescriptionHelpFormatter


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    v = sub.add_parser("version", parents=parents, help="client and server versions", formatter_class=FMT,
                       epilog="examples:\n  clusterctl version\n  clusterctl version --client\n  clusterctl version -o json\n")
    v.add_argument("--client", action="store_true", help="client version only (no server needed)")
    v.add_argument("-o", "--output", choices=["", "json", "yaml"], default="")
    v.set_defaults(func=run_version)
    a = sub.add_parser("api-resources", parents=parents, help="the resource types the server serves", formatter_class=FMT,
                       epilog="examples:\n  clusterctl api-resources\n  clusterctl api-resources --namespaced=false\n  clusterctl api-resources -o name\n")
    a.add_argument("--namespaced", choices=["true", "false"])
    a.add_argument("--api-group")
    a.add_argument("-o", "--output", choices=["", "wide", "name"], default="")
    a.set_defaults(func=run_api_resources)
    e = sub.add_parser("explain-schedule", parents=parents, help="why a pod is (not) scheduled: per-node filters and scores",
                       formatter_class=FMT, epilog="examples:\n  clusterctl explain-schedule web-5d8f-abcde\n  clusterctl explain-schedule pod/web-1 -n demo\n")
    e.add_argument("pod")
    e.set_defaults(func=run_explain)
    c = sub.add_parser("completion", parents=parents, help="print a shell completion script", formatter_class=FMT,
                       epilog="examples:\n  source <(clusterctl completion bash)\n  clusterctl completion zsh > \"${fpath[1]}/_clusterctl\"\n")
    c.add_argument("shell", choices=["bash", "zsh"])
    c.set_defaults(run_local=run_completion)


async def run_version(args: argparse.Namespace, s: Session) -> int:
    client = {"gitVersion": f"v{__version__}", "platform": "python", "major": "1", "minor": "32"}
    server = None
    if not args.client:
        server = await s.client.request("GET", "/version")
    if args.output:
        doc = {"clientVersion": client, **({"serverVersion": server} if server else {})}
        print(json.dumps(doc, indent=2) if args.output == "json" else to_yaml(doc).rstrip())
        return 0
    print(f"Client Version: clusterctl v{__version__}")
    if server:
        print(f"Server Version: {server.get('gitVersion', '?')}")
    return 0


async def discovery(s: Session) -> list[tuple[str, str, str, bool, str, list[str]]]:
    """(name, shortnames, apiVersion, namespaced, kind, verbs) for every top-level resource."""
    gvs = ["v1"]
    groups = await s.client.request("GET", "/apis")
    for g in groups.get("groups") or []:
        pv = (g.get("preferredVersion") or {}).get("groupVersion")
        if pv:
            gvs.append(pv)
    out = []
    for gv in gvs:
        try:
            doc = await s.client.request("GET", "/api/v1" if gv == "v1" else f"/apis/{gv}")
        except ApiError:
            continue
        for r in doc.get("resources") or []:
            if "/" in r["name"]:
                continue
            out.append((r["name"], ",".join(r.get("shortNames") or []), gv, bool(r.get("namespaced")), r["kind"], list(r.get("verbs") or [])))
    return sorted(out, key=lambda t: (t[2].rpartition("/")[0], t[0]))


async def run_api_resources(args: argparse.Namespace, s: Session) -> int:
    rows = []
    for name, short, gv, namespaced, kind, verbs in await discovery(s):
        if args.namespaced and (args.namespaced == "true") != namespaced:
            continue
        group = gv.rpartition("/")[0]
        if args.api_group is not None and args.api_group != group:
            continue
        if args.output == "name":
            rows.append([f"{name}.{group}" if group else name])
            continue
        row = [name, short, gv, "true" if namespaced else "false", kind]
        if args.output == "wide":
            row.append("[" + " ".join(verbs) + "]")
        rows.append(row)
    if args.output == "name":
        print("\n".join(r[0] for r in rows))
        return 0
    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"] + (["VERBS"] if args.output == "wide" else [])
    print(format_rows(header, rows))
    return 0


async def run_explain(args: argparse.Namespace, s: Session) -> int:
    from clusterctl.scheduler.explain import explain, render_explain_table
    name = args.pod.split("/", 1)[1] if args.pod.startswith(("pod/", "pods/")) else args.pod
    pod = await s.client.get("pods", name, namespace=s.namespace)
    nodes = (await s.client.list("nodes"))["items"]
    pods = (await s.client.list("pods"))["items"]
    print(render_explain_table(explain(pod, nodes, pods)))
    return 0


BASH = r'''# clusterctl bash completion: source <(clusterctl completion bash)
_clusterctl() {
    local cur prev words cword
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    local verbs="%(verbs)s"
    local types="%(types)s"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=( $(compgen -W "$verbs" -- "$cur") ); return
    fi
    case "$prev" in
        -n|--namespace)
            COMPREPLY=( $(compgen -W "$(clusterctl get namespaces -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)" -- "$cur") ); return ;;
        -o|--output)
            COMPREPLY=( $(compgen -W "wide yaml json name jsonpath=" -- "$cur") ); return ;;
        -f|--filename|--kubeconfig)
            COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    esac
    local verb="${COMP_WORDS[1]}"
    case "$verb" in
        get|describe|delete|label|annotate|edit|patch|scale|expose|rollout|set)
            local t=""
            for w in "${COMP_WORDS[@]:2:$((COMP_CWORD-2))}"; do [[ "$w" != -* && "$w" != status && "$w" != image ]] && t="$w"; done
            if [[ -z "$t" ]]; then
                COMPREPLY=( $(compgen -W "$types" -- "$cur") )
            else
                COMPREPLY=( $(compgen -W "$(clusterctl get "$t" -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)" -- "$cur") )
            fi ;;
        logs|exec|explain-schedule)
            COMPREPLY=( $(compgen -W "$(clusterctl get pods -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)" -- "$cur") ) ;;
        cordon|uncordon|drain)
            COMPREPLY=( $(compgen -W "$(clusterctl get nodes -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)" -- "$cur") ) ;;
        top) COMPREPLY=( $(compgen -W "nodes pods" -- "$cur") ) ;;
        completion) COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ) ;;
    esac
}
complete -o default -F _clusterctl clusterctl
'''

ZSH = r'''#compdef clusterctl
# clusterctl zsh completion: clusterctl completion zsh > "${fpath[1]}/_clusterctl"
autoload -U +X bashcompinit && bashcompinit
''' + BASH


def completion_script(shell: str) -> str:
    from clusterctl.cli import COMMANDS, KUBECTL_VERBS
    from clusterctl.client.resources import BUILTIN
    verbs = " ".join(sorted(set(KUBECTL_VERBS) | set(COMMANDS)))
    types = " ".join(sorted({rt.plural for rt in BUILTIN} | {s for rt in BUILTIN for s in rt.short_names}))
    script = BASH if shell == "bash" else ZSH
    return script % {"verbs": verbs, "types": types} if shell == "bash" else script.replace("%(verbs)s", verbs).replace("%(types)s", types)


def run_completion(args: argparse.Namespace) -> int:
    if args.shell not in ("bash", "zsh"):
        raise UsageError("completion: shell must be bash or zsh")
    print(completion_script(args.shell), end="")
    return 0
