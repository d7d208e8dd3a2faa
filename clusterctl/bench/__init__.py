"""Benchmarks: ``clusterctl bench NAME [...] --json`` — one module per benchmark.

Each benchmark module exposes ``main(argv) -> int`` and prints exactly one JSON object on stdout
(progress goes to stderr). Figures and the commands that reproduce them live in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path


def run_in_workdir(workdir: str | None, prefix: str, run: Callable[[Path], Awaitable[dict]]) -> dict:
    """Run a benchmark coroutine in ``workdir`` (kept, for looking at logs afterwards) or in a
    temporary folder that is removed when it ends."""
    if workdir:
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(work))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return asyncio.run(run(Path(tmp)))


def print_result(result: dict, *, as_json: bool) -> None:
    """The one JSON object a benchmark prints (indented for people unless ``--json``)."""
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))
