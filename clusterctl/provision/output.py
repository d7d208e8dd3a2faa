"""What a provisioning run shows: Ansible-style lines, live progress, PLAY RECAP, a JSON event feed.

The executor reports events (play start, task start, one result per host, retries, recap) to a
``RunOutput``; this module decides how they look. On a terminal a status line under the log says
which task runs and how many hosts are done; elsewhere only plain lines are written, so logs and
CI output stay clean. ``--log-json FILE`` gets one JSON object per event and line (flushed as it
happens, so the dashboard can follow it like ``tail -f``). Results of ``no_log`` tasks are
replaced before they reach either.
"""

from __future__ import annotations

import difflib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

NO_LOG_MSG = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"

#: keys Ansible drops from the ``=> {...}`` it prints (internal bookkeeping, bulky)
_HIDDEN_KEYS = {"ansible_facts", "_ansible_no_log", "_ansible_item_label", "_ansible_verbose_always", "diff",
                "invocation", "_ansible_delegated_vars", "ansible_loop_var", "_duration"}


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    def as_dict(self) -> dict:
        return dict(ok=self.ok, changed=self.changed, unreachable=self.unreachable, failed=self.failed,
                    skipped=self.skipped, rescued=self.rescued, ignored=self.ignored)


def censor(result: dict) -> dict:
    """What a ``no_log`` result may show: its outcome, never its values."""
    kept = {k: result[k] for k in ("changed", "failed", "skipped", "unreachable", "attempts") if k in result}
    kept["censored"] = NO_LOG_MSG
    return kept


def _to_text(value: Any) -> str:
    return json.dumps(value, indent=4, sort_keys=True, default=str, ensure_ascii=False)


def unified_diff(diff: Any) -> str:
    """Render a module's ``diff`` (dict or list of dicts with before/after/headers) as a unified diff."""
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for d in parts:
        if not isinstance(d, dict):
            continue
        if "prepared" in d:
            out.append(str(d["prepared"]))
            continue
        before, after = d.get("before", ""), d.get("after", "")
        if not isinstance(before, str):
            before = _to_text(before) + "\n"
        if not isinstance(after, str):
            after = _to_text(after) + "\n"
        if before == after:
            continue
        bh, ah = d.get("before_header"), d.get("after_header")
        lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                     fromfile=f"before: {bh}" if bh else "before", tofile=f"after: {ah}" if ah else "after")
        text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
        out.append(text)
    return "".join(out)


class RunOutput:
    """Sink for executor events. ``stream``: where lines go; ``log_json``: an open text file or None."""

    def __init__(self, stream: IO[str] | None = None, *, verbosity: int = 0, diff: bool = False,
                 log_json: IO[str] | None = None, tty: bool | None = None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stdout
        self.verbosity = verbosity
        self.show_diff = diff
        self.log_json = log_json
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.stats: dict[str, HostStats] = {}
        self._task: str | None = None
        self._task_hosts = 0
        self._task_done = 0
        self._status_shown = False
        self._started = clock()
        self._printed_tasks: set[int] = set()

    # -- plumbing

    def _event(self, kind: str, **data) -> None:
        if self.log_json is None:
            return
        data = {"event": kind, "time": round(time.time(), 6), **data}
        self.log_json.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
        self.log_json.flush()

    def _clear_status(self) -> None:
        if self.tty and self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False

    def _show_status(self) -> None:
        if not self.tty or self._task is None:
            return
        elapsed = self.clock() - self._started
        self.stream.write(f"\r\x1b[K  ... {self._task}: {self._task_done}/{self._task_hosts} hosts done  ({elapsed:.1f}s)")
        self.stream.flush()
        self._status_shown = True

    def line(self, text: str = "") -> None:
        self._clear_status()
        self.stream.write(text + "\n")
        self._show_status()
        if not self.tty:
            self.stream.flush()

    def host_stats(self, host: str) -> HostStats:
        st = self.stats.get(host)
        if st is None:
            st = self.stats[host] = HostStats()
        return st

    # -- events

    def playbook_start(self, path: str) -> None:
        self._event("playbook_start", playbook=path)

    def play_start(self, name: str, hosts: list[str]) -> None:
        self._task = None
        self.line("")
        self.line(_banner(f"PLAY [{name}]"))
        self._event("play_start", play=name, hosts=hosts)

    def no_hosts(self, name: str) -> None:
        self.line("skipping: no hosts matched")
        self._event("play_skipped", play=name, reason="no hosts matched")

    def task_start(self, name: str, hosts: int, *, task_id: int | None = None, handler: bool = False, where: str = "") -> None:
        if task_id is not None:
            if task_id in self._printed_tasks:
                self._task_hosts += hosts
                return
            self._printed_tasks.add(task_id)
        self._task = name
        self._task_hosts = hosts
        self._task_done = 0
        self.line("")
        self.line(_banner(f"{'RUNNING HANDLER' if handler else 'TASK'} [{name}]"))
        self._event("task_start", task=name, hosts=hosts, handler=handler, where=where)
        self._show_status()

    def host_start(self, host: str, task: str) -> None:
        self._event("host_start", host=host, task=task)

    def task_end(self, name: str) -> None:
        self._event("task_end", task=name)

    def retry(self, host: str, task: str, retries_left: int, result: dict, no_log: bool) -> None:
        shown = censor(result) if no_log else result
        text = f"FAILED - RETRYING: [{host}]: {task} ({retries_left} retries left)."
        if self.verbosity:
            text += f"Result was: {_compact(shown)}"
        self.line(text)
        self._event("retry", host=host, task=task, retries_left=retries_left)

    def item_result(self, host: str, task: str, status: str, item_label: Any, result: dict, *, no_log: bool, delegated: str | None = None) -> None:
        """One loop item's line (``ok: [h] => (item=x)``)."""
        shown = censor(result) if no_log else result
        label = "(item=" + (NO_LOG_MSG if no_log else _label(item_label)) + ")"
        target = f"[{host} -> {delegated}]" if delegated else f"[{host}]"
        if status == "failed":
            self.line(f"failed: {target} {label} => {_compact(_visible(shown))}")
        elif status == "skipped":
            self.line(f"skipping: {target} {label}")
        else:
            text = f"{status}: {target} {label}"
            if self.verbosity:
                text += f" => {_compact(_visible(shown))}"
            self.line(text)
        if self.show_diff and not no_log and result.get("diff") and result.get("changed"):
            self._diff(result["diff"])

    def host_result(self, host: str, task: str, status: str, result: dict, *, duration: float, no_log: bool,
                    loop: bool = False, ignored: bool = False, delegated: str | None = None, action: str = "") -> None:
        """The final result of one task on one host. ``status``: ok/changed/failed/skipped/unreachable."""
        shown = censor(result) if no_log else result
        self._task_done += 1
        target = f"[{host} -> {delegated}]" if delegated else f"[{host}]"
        if status == "unreachable":
            self.line(f"fatal: {target}: UNREACHABLE! => {_compact(_visible(shown))}")
        elif status == "failed":
            prefix = "failed" if loop else "fatal"
            self.line(f"{prefix}: {target}: FAILED! => {_compact(_visible(shown))}")
            if ignored:
                self.line("...ignoring")
        elif status == "skipped":
            if not loop:
                self.line(f"skipping: {target}" + (f" => {_compact(_visible(shown))}" if self.verbosity else ""))
        else:
            if action in ("debug", "assert") and not no_log and not loop:
                shown_debug = {k: v for k, v in _visible(shown).items() if k not in ("changed", "failed")}
                self.line(f"{status}: {target} => {json.dumps(shown_debug, indent=4, default=str, ensure_ascii=False)}")
            elif loop:
                # Ansible prints one line per item; the overall line only with -v
                if self.verbosity:
                    self.line(f"{status}: {target} => {_compact(_visible(shown))}")
            else:
                text = f"{status}: {target}"
                if self.verbosity:
                    text += f" => {_compact(_visible(shown))}"
                self.line(text)
            if self.show_diff and not loop and not no_log and result.get("diff") and result.get("changed"):
                self._diff(result["diff"])
        event = dict(host=host, task=task, status=status, changed=bool(result.get("changed")),
                     duration_s=round(duration, 6))
        if ignored:
            event["ignored"] = True
        if status in ("failed", "unreachable"):
            event["msg"] = NO_LOG_MSG if no_log else str(result.get("msg", ""))[:2000]
            if not no_log:  # a failed command's own words (the tail: that is where errors are)
                for key in ("rc", "stderr", "stdout"):
                    value = result.get(key)
                    if value not in (None, ""):
                        event[key] = value if key == "rc" else str(value)[-2000:]
        if self.verbosity and not no_log:
            event["result"] = _visible(result)
        self._event("host_result", **event)
        self._show_status()

    def _diff(self, diff: Any) -> None:
        text = unified_diff(diff)
        if text:
            for ln in text.rstrip("\n").split("\n"):
                self.line(ln)

    def included(self, path: str, hosts: list[str], *, item: Any = None) -> None:
        suffix = "" if item is None else f" => (item={_label(item)})"
        self.line(f"included: {path} for {', '.join(hosts)}{suffix}")
        self._event("included", path=path, hosts=hosts)

    def warning(self, text: str) -> None:
        self.line(f"[WARNING]: {text}")
        self._event("warning", msg=text)

    def message(self, text: str) -> None:
        self.line(text)

    def play_end(self, name: str) -> None:
        self._event("play_end", play=name)

    def recap(self, hosts: list[str] | None = None) -> None:
        self._task = None
        self._clear_status()
        self.line("")
        self.line(_banner("PLAY RECAP"))
        names = hosts if hosts is not None else sorted(self.stats)
        width = max([26] + [len(n) for n in names])  # ansible-playbook pads host names to 26
        for name in names:
            s = self.host_stats(name)
            self.line(
                f"{name:<{width}} : ok={s.ok:<4} changed={s.changed:<4} unreachable={s.unreachable:<4} "
                f"failed={s.failed:<4} skipped={s.skipped:<4} rescued={s.rescued:<4} ignored={s.ignored:<4}".rstrip()
            )
        self.line("")
        self._event("recap", hosts={n: self.host_stats(n).as_dict() for n in names},
                    duration_s=round(self.clock() - self._started, 6))
        self.stream.flush()


def _banner(text: str, width: int = 80) -> str:
    return f"{text} " + "*" * max(3, width - len(text) - 1)


def _visible(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in _HIDDEN_KEYS}


def _compact(result: Any) -> str:
    return json.dumps(result, default=str, ensure_ascii=False, sort_keys=True)


def _label(item: Any) -> str:
    if isinstance(item, str):
        return item
    return json.dumps(item, default=str, ensure_ascii=False, sort_keys=True)
