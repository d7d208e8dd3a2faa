"""``wait_for``: wait on the host until a port opens/closes/drains or a path appears/disappears.

Each poll is one command on the host (a TCP connect through bash's ``/dev/tcp``, ``nc`` or busybox
``nc``; ``ss`` for drained connections; ``test -e``/``grep -E`` for paths), repeated every
``sleep`` seconds until ``timeout``. The clock and the sleep are module attributes (``CLOCK``,
``SLEEP``) so tests run the real loop without real waiting. Nothing is changed on the host, so the
module is the same in check mode.
"""

from __future__ import annotations

import asyncio
import shlex
import time

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.results import failed, ok

q = shlex.quote
CLOCK = time.monotonic
SLEEP = asyncio.sleep
STATES = ("started", "present", "stopped", "absent", "drained")


def validate_wait_for(args: dict) -> None:
    state = args.get("state")
    if state is not None and "{{" not in str(state) and state not in STATES:
        raise ModuleArgError(f"wait_for: value of state must be one of: {', '.join(STATES)}, got: {state}")
    if args.get("port") is not None and args.get("path") is not None:
        raise ModuleArgError("wait_for: port and path parameter can not both be passed")


def _connect_cmd(host: str, port: int, connect_timeout: float, search_regex: str | None) -> str:
    h, p, t = q(host), int(port), max(1, int(connect_timeout + 0.999))
    if search_regex:
        grep = f"grep -Eq {q(search_regex)}"
        return (f"if command -v bash >/dev/null 2>&1; then timeout {t} bash -c 'exec 3<>/dev/tcp/$0/$1 && timeout {t} cat <&3' {h} {p} 2>/dev/null | {grep}; "
                f"else timeout {t} nc {h} {p} </dev/null 2>/dev/null | {grep}; fi")
    return (f"if command -v bash >/dev/null 2>&1; then timeout {t} bash -c 'exec 3<>/dev/tcp/$0/$1' {h} {p} 2>/dev/null; "
            f"elif command -v nc >/dev/null 2>&1; then timeout {t} nc -z {h} {p} 2>/dev/null; "
            f"else timeout {t} busybox nc -z {h} {p} 2>/dev/null; fi")


def _condition(args: dict) -> tuple[str, str]:
    """(shell test that succeeds when the wait is over, description for the timeout message)."""
    state = args.get("state") or "started"
    host = str(args.get("host") or "127.0.0.1")
    path, port = args.get("path"), args.get("port")
    regex = args.get("search_regex")
    ct = float(args.get("connect_timeout", 5))
    if path is not None:
        p = q(str(path))
        if state in ("absent", "stopped"):
            return f"[ ! -e {p} ]", f"file {path} to be absent"
        if regex:
            return f"[ -e {p} ] && grep -Eq {q(str(regex))} {p}", f"file {path} to contain {regex!r}"
        return f"[ -e {p} ]", f"file {path}"
    if port is not None:
        if state in ("absent", "stopped"):
            return f"! {{ {_connect_cmd(host, int(port), ct, None)}; }}", f"{host}:{port} to stop"
        if state == "drained":
            return (f"n=$(ss -Htn state established '( sport = :{int(port)} )' 2>/dev/null | wc -l); [ \"$n\" -eq 0 ]",
                    f"{host}:{port} to drain")
        return _connect_cmd(host, int(port), ct, str(regex) if regex else None), f"{host}:{port}"
    return "", ""


async def run_wait_for(ctx: ModuleContext, args: dict) -> dict:
    timeout = float(args.get("timeout", 300))
    delay = float(args.get("delay", 0))
    interval = float(args.get("sleep", 1))
    start = CLOCK()
    if delay:
        await SLEEP(delay)
    test, what = _condition(args)
    if not test:
        await SLEEP(timeout)
        return ok(False, elapsed=round(CLOCK() - start, 3))
    deadline = start + timeout
    while True:
        res = await ctx.run(test)
        if res.rc == 0:
            result = ok(False, elapsed=round(CLOCK() - start, 3), state=args.get("state") or "started")
            for key in ("path", "port"):
                if args.get(key) is not None:
                    result[key] = args[key]
            return result
        if CLOCK() >= deadline:
            return failed(str(args.get("msg") or f"Timeout when waiting for {what}"), elapsed=round(CLOCK() - start, 3))
        await SLEEP(min(interval, max(0.0, deadline - CLOCK())))
