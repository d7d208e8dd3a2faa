"""Shaping module results the way Ansible does (``changed``, ``failed``, ``rc``, ``*_lines``, ``diff``).

Modules build their result through these helpers so every result carries the same keys the
executor, ``register`` and ``changed_when``/``failed_when`` expressions expect.
"""

from __future__ import annotations

from clusterctl.provision.connection import CommandResult

NO_LOG_MSG = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"


def ok(changed: bool = False, **extra) -> dict:
    result = {"changed": bool(changed), "failed": False}
    result.update(extra)
    return result


def failed(msg: str, **extra) -> dict:
    result = {"changed": False, "failed": True, "msg": msg}
    result.update(extra)
    return result


def skipped(msg: str, **extra) -> dict:
    result = {"changed": False, "failed": False, "skipped": True, "msg": msg}
    result.update(extra)
    return result


def command_fields(res: CommandResult, strip: bool = True) -> dict:
    """rc/stdout/stderr (+ ``_lines``) of a command, with trailing newlines stripped like Ansible."""
    out = res.stdout.rstrip("\r\n") if strip else res.stdout
    err = res.stderr.rstrip("\r\n") if strip else res.stderr
    return {
        "rc": res.rc,
        "stdout": out,
        "stderr": err,
        "stdout_lines": out.splitlines(),
        "stderr_lines": err.splitlines(),
    }


def command_failure(what: str, res: CommandResult, **extra) -> dict:
    """A failed result for a helper command, naming what it tried and what the host said."""
    detail = (res.stderr.strip() or res.stdout.strip())[-2000:]
    msg = f"{what} failed (rc={res.rc})" + (f": {detail}" if detail else "")
    return failed(msg, **command_fields(res), **extra)


def content_diff(path: str, before: str | None, after: str | None) -> dict:
    return {
        "before": before if before is not None else "",
        "after": after if after is not None else "",
        "before_header": path if before is not None else "/dev/null",
        "after_header": path if after is not None else "/dev/null",
    }


def as_text(data: bytes | str | None) -> str | None:
    """Text for a diff; binary content is not diffed (``None`` means 'not shown')."""
    if data is None:
        return None
    if isinstance(data, str):
        return data
    if b"\0" in data[:8192]:
        return "<binary content>"
    return data.decode("utf-8", errors="replace")
