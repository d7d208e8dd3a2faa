"""Reading a ``--log-json`` feed in tests: what failed, said compactly enough for the one-line
summary pytest prints at the end of a run (where CI's excerpt shows it)."""

from __future__ import annotations

import json
from pathlib import Path

from clusterctl.bootstrap.cli import bootstrap_main


def failures(log: Path, limit: int = 1500) -> str:
    """``host: task: msg (stderr tail)`` for every failed or unreachable task in the feed."""
    if not log.exists():
        return f"(no {log})"
    lines = []
    for raw in log.read_text().splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if event.get("event") == "host_result" and event.get("status") in ("failed", "unreachable") \
                and not event.get("ignored"):
            said = " ".join(str(event.get(k, "")).strip() for k in ("msg", "stderr") if event.get(k))
            lines.append(f"{event['host']}: {event['task']}: {said[-limit:]}")
    return "\n".join(lines) or "(no failed task in the feed)"


def bootstrap(argv: list[str], log: Path) -> None:
    """Run ``clusterctl bootstrap ARGV --log-json LOG`` and fail the test with the failed tasks."""
    rc = bootstrap_main([*argv, "--log-json", str(log)])
    assert rc == 0, f"bootstrap exited {rc}:\n{failures(log)}"
