"""How verbs print objects: server-side Tables like kubectl, and ``-o yaml|json|name|wide|jsonpath=``.

Tables come from the API server (``meta.k8s.io/v1`` ``Table``); this module only lays them out
the way kubectl's ``HumanReadablePrinter`` does: upper-case headers, columns padded to the widest
cell plus three spaces, priority-1 columns only with ``-o wide``, a NAMESPACE column first with
``-A``, a LABELS column with ``--show-labels``. ``jsonpath-lite`` supports ``{.a.b[0].c}``,
``{.items[*].metadata.name}`` and literal text around the braces — enough for scripts.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from clusterctl.errors import UsageError


def _cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def column_widths(header: list[str], rows: list[list[str]]) -> list[int]:
    widths = [len(h) for h in header]
    for row in rows:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    return widths


def format_row(row: list[str], widths: list[int]) -> str:
    """One row padded to ``widths`` (``-w`` rows line up under the first table)."""
    return "   ".join(c.ljust(widths[i]) if i < len(widths) and i < len(row) - 1 else c for i, c in enumerate(row)).rstrip()


def format_rows(header: list[str], rows: list[list[str]]) -> str:
    """kubectl's tabwriter: min width 0, padding 3, left-aligned, no trailing spaces."""
    widths = column_widths(header, rows)
    lines = []
    for row in [header, *rows]:
        parts = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines)


def table_rows(table: dict, *, wide: bool, namespace_column: bool, show_labels: bool,
               kind_prefix: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a server ``Table`` as kubectl would print them."""
    cols = table.get("columnDefinitions") or []
    keep = [i for i, c in enumerate(cols) if wide or int(c.get("priority") or 0) == 0]
    header = [cols[i]["name"].upper() for i in keep]
    if namespace_column:
        header.insert(0, "NAMESPACE")
    if show_labels:
        header.append("LABELS")
    rows = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        out = [_cell(cells[i]) if i < len(cells) else "" for i in keep]
        meta = (row.get("object") or {}).get("metadata") or {}
        if kind_prefix and out:
            out[0] = f"{kind_prefix}/{out[0]}"
        if namespace_column:
            out.insert(0, meta.get("namespace") or "")
        if show_labels:
            labels = meta.get("labels") or {}
            out.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
        rows.append(out)
    return header, rows


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def resource_name(obj: dict, plural_hint: str | None = None) -> str:
    """``-o name``: ``deployment.apps/web``, ``pod/web-1``."""
    kind = str(obj.get("kind") or plural_hint or "").lower()
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    prefix = f"{kind}.{group}" if group else kind
    return f"{prefix}/{(obj.get('metadata') or {}).get('name')}"


def as_list(objs: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}}


_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\*|-?\d+)\]")


def _walk(values: list[Any], path: str) -> list[Any]:
    for m in _TOKEN.finditer(path):
        key, index = m.group(1), m.group(2)
        nxt: list[Any] = []
        for v in values:
            if key is not None:
                if isinstance(v, dict) and key in v:
                    nxt.append(v[key])
            elif index == "*":
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
            elif isinstance(v, list):
                i = int(index)
                if -len(v) <= i < len(v):
                    nxt.append(v[i])
        values = nxt
    return values


def jsonpath(obj: Any, template: str) -> str:
    """Evaluate a jsonpath-lite template (``{.a.b}`` parts joined with the literal text)."""
    out: list[str] = []
    pos = 0
    for m in re.finditer(r"\{([^}]*)\}", template):
        out.append(template[pos:m.start()])
        expr = m.group(1).strip()
        if expr in ("", "."):
            vals = [obj]
        elif not expr.startswith(".") and not expr.startswith("["):
            out.append(expr.strip("'\""))
            pos = m.end()
            continue
        else:
            vals = _walk([obj], expr)
        out.append(" ".join(v if isinstance(v, str) else json.dumps(v) for v in vals))
        pos = m.end()
    out.append(template[pos:])
    text = "".join(out)
    return text.replace("\\n", "\n").replace("\\t", "\t")


def print_objects(objs: list[dict], output: str, *, single: bool) -> str:
    """Render objects for ``-o yaml|json|name|jsonpath=...``; ``single`` prints one object, not a List."""
    doc: Any = objs[0] if single and len(objs) == 1 else as_list(objs)
    if output == "yaml":
        return to_yaml(doc).rstrip("\n")
    if output == "json":
        return to_json(doc)
    if output == "name":
        return "\n".join(resource_name(o) for o in objs)
    if output.startswith("jsonpath="):
        return jsonpath(doc, output.split("=", 1)[1])
    raise UsageError(f"unable to match a printer suitable for the output format {output!r}, allowed formats are: json,jsonpath,name,wide,yaml")
