"""``logs`` and ``exec``: a container's output and a command inside it, through the API server.

``logs`` reads ``pods/log`` (``-f`` streams it, ``--previous``, ``--tail``, ``--timestamps``,
``-c``); a Deployment/ReplicaSet/Job name (``deploy/web``) picks its first pod, as kubectl does.
``exec`` opens ``pods/exec`` as a WebSocket with the ``v5.channel.k8s.io`` subprotocol (falling
back to v4): stdin on channel 0, stdout 1, stderr 2, the final ``Status`` on 3 (its ``ExitCode``
cause becomes our exit code), resize 4, and v5's close-stdin frame (255, 0) at end of input.
``-t`` puts the local terminal in raw mode and sends its size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from urllib.parse import quote

import aiohttp

from clusterctl.client.errors import NotFound
from clusterctl.errors import UsageError
from clusterctl.kubectl.session import Session

FMT = argparse.RawDescriptionHelpFormatter
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    lg = sub.add_parser("logs", parents=parents, help="print the logs of a container in a pod", formatter_class=FMT,
                        epilog="examples:\n  clusterctl logs web-5d8f-abcde\n  clusterctl logs -f deploy/web\n"
                               "  clusterctl logs web-1 -c sidecar --previous\n  clusterctl logs web-1 --tail=20 --timestamps\n")
    lg.add_argument("pod")
    lg.add_argument("container_arg", nargs="?", metavar="CONTAINER")
    lg.add_argument("-c", "--container")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-p", "--previous", action="store_true")
    lg.add_argument("--tail", type=int, default=-1)
    lg.add_argument("--timestamps", action="store_true")
    lg.set_defaults(func=run_logs)
    ex = sub.add_parser("exec", parents=parents, help="run a command in a container", formatter_class=FMT,
                        epilog="examples:\n  clusterctl exec web-1 -- ls /\n  clusterctl exec -it web-1 -- sh\n"
                               "  echo hi | clusterctl exec -i web-1 -c app -- cat\n  clusterctl exec deploy/web -- env\n")
    ex.add_argument("pod")
    ex.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    ex.add_argument("-c", "--container")
    ex.add_argument("-i", "--stdin", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.set_defaults(func=run_exec)


async def resolve_pod(s: Session, ref: str) -> str:
    """A pod name from ``NAME``, ``pod/NAME`` or ``deploy/NAME`` (its first pod, by creation time)."""
    if "/" not in ref:
        return ref
    kind, _, name = ref.partition("/")
    rt = await s.client.resource_type(kind)
    if rt.kind == "Pod":
        return name
    obj = await s.client.get(rt.plural, name, namespace=s.namespace, api_version=rt.api_version)
    sel = ((obj.get("spec") or {}).get("selector") or {})
    labels = sel.get("matchLabels") or (sel if rt.kind == "Service" else {})
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods = (await s.client.list("pods", namespace=s.namespace, label_selector=selector))["items"]
    pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise NotFound({"code": 404, "reason": "NotFound", "message": f"no pods found for {rt.singular} {name!r}"})
    pods.sort(key=lambda p: ((p.get("status") or {}).get("phase") != "Running", p["metadata"].get("creationTimestamp", "")))
    return pods[0]["metadata"]["name"]


async def run_logs(args: argparse.Namespace, s: Session) -> int:
    pod = await resolve_pod(s, args.pod)
    container = args.container or args.container_arg
    tail = args.tail if args.tail >= 0 else None
    if args.follow:
        params = {"container": container, "tailLines": tail, "follow": "true", "timestamps": args.timestamps or None}
        url = f"{s.client.server}/api/v1/namespaces/{s.namespace}/pods/{quote(pod)}/log"
        from clusterctl.client.rest import _clean_params, _error_from_response
        async with s.client._get_session().get(url, params=_clean_params(params), headers=s.client._auth_headers(),
                                               timeout=aiohttp.ClientTimeout(total=None)) as resp:
            if resp.status >= 400:
                raise _error_from_response(resp.status, resp.reason or "", await resp.read(), "GET", url)
            async for chunk in resp.content.iter_any():
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        return 0
    text = await s.client.log(s.namespace, pod, container=container, tail_lines=tail, previous=args.previous, timestamps=args.timestamps)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def exit_code_of(status: dict) -> int:
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    return 1


async def run_exec(args: argparse.Namespace, s: Session) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("you must specify at least one command for the container: clusterctl exec POD -- COMMAND")
    pod = await resolve_pod(s, args.pod)
    params: list[tuple[str, str]] = [("command", c) for c in command]
    params += [("stdout", "true"), ("stderr", "false" if args.tty else "true")]
    if args.stdin:
        params.append(("stdin", "true"))
    if args.tty:
        params.append(("tty", "true"))
    if args.container:
        params.append(("container", args.container))
    url = f"{s.client.server}/api/v1/namespaces/{s.namespace}/pods/{quote(pod)}/exec"
    try:
        ws = await s.client._get_session().ws_connect(url, params=params, protocols=PROTOCOLS, headers=s.client._auth_headers(), max_msg_size=0)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 404:
            raise NotFound({"code": 404, "reason": "NotFound", "message": f'pods "{pod}" not found'}) from exc
        from clusterctl.client.errors import api_error_from_status
        raise api_error_from_status({"code": exc.status, "reason": "BadRequest", "message": f"exec refused: {exc.message}"}) from exc
    v5 = ws.protocol == "v5.channel.k8s.io"
    raw_mode = _RawTerminal() if args.tty and args.stdin and sys.stdin.isatty() else None
    status: dict = {}
    loop = asyncio.get_running_loop()

    async def pump_stdin() -> None:
        if raw_mode is not None:
            size = os.get_terminal_size()
            await ws.send_bytes(b"\x04" + json.dumps({"Width": size.columns, "Height": size.lines}).encode())
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(sys.stdin.fileno()), "rb", 0))
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await ws.send_bytes(b"\x00" + data)
        if v5:
            await ws.send_bytes(b"\xff\x00")

    stdin_task = asyncio.create_task(pump_stdin()) if args.stdin else None
    try:
        if raw_mode:
            raw_mode.enter()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == 1:
                sys.stdout.buffer.write(payload)
                sys.stdout.flush()
            elif channel == 2:
                sys.stderr.buffer.write(payload)
                sys.stderr.flush()
            elif channel == 3:
                try:
                    status = json.loads(payload or b"{}")
                except ValueError:
                    status = {"status": "Failure", "message": payload.decode(errors="replace")}
    finally:
        if raw_mode:
            raw_mode.leave()
        if stdin_task is not None:
            stdin_task.cancel()
            await asyncio.gather(stdin_task, return_exceptions=True)
        await ws.close()
    code = exit_code_of(status) if status else 0
    if code and status.get("message") and not any(c.get("reason") == "ExitCode" for c in (status.get("details") or {}).get("causes") or []):
        print(f"error: {status['message']}", file=sys.stderr)
    return code


class _RawTerminal:
    def __init__(self) -> None:
        import termios
        self.fd = sys.stdin.fileno()
        self.saved = termios.tcgetattr(self.fd)

    def enter(self) -> None:
        import tty
        tty.setraw(self.fd)

    def leave(self) -> None:
        import termios
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
