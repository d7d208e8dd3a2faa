"""Reading manifests for ``-f``: files, folders (``*.yaml``, ``*.yml``, ``*.json``), ``-`` for stdin,
multi-document YAML and ``kind: List`` documents, in the order given (folders sorted by name)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from clusterctl.errors import UsageError

EXTENSIONS = (".yaml", ".yml", ".json")


def _docs(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise UsageError(f"error parsing {source}: {exc}") from exc
    out: list[dict[str, Any]] = []
    for d in docs:
        if not isinstance(d, dict):
            raise UsageError(f"error parsing {source}: a document is not an object")
        if d.get("kind") == "List" or (str(d.get("kind", "")).endswith("List") and "items" in d):
            out.extend(d.get("items") or [])
        else:
            if "apiVersion" not in d or "kind" not in d:
                raise UsageError(f"error validating {source}: apiVersion and kind must be set")
            out.append(d)
    return out


def read_manifests(paths: list[str], *, recursive: bool = False) -> list[dict[str, Any]]:
    if not paths:
        raise UsageError("must specify one of -f or -k (e.g. -f deployment.yaml, -f folder/, -f -)")
    objs: list[dict[str, Any]] = []
    for p in paths:
        if p == "-":
            objs.extend(_docs(sys.stdin.read(), "STDIN"))
            continue
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in (path.rglob("*") if recursive else path.iterdir()) if f.suffix in EXTENSIONS and f.is_file())
            for f in files:
                objs.extend(_docs(f.read_text(), str(f)))
        elif path.is_file():
            objs.extend(_docs(path.read_text(), str(path)))
        else:
            raise UsageError(f'the path "{p}" does not exist')
    return objs
