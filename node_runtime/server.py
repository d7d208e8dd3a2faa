"""The agent's HTTPS endpoint (kubelet's port): container logs, exec, and usage stats.

Routes (kubelet's paths, so the API server proxies them the way Kubernetes does):
- ``GET /containerLogs/{namespace}/{pod}/{container}?tailLines&limitBytes&sinceSeconds&timestamps&previous&follow``
- ``GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin&stdout&stderr&tty`` — WebSocket,
  subprotocols ``v5.channel.k8s.io`` / ``v4.channel.k8s.io``: binary frames whose first byte is
  the channel (0 stdin, 1 stdout, 2 stderr, 3 status JSON, 4 resize JSON; v5: 255 = close stdin).
  With ``tty`` the command gets a pty (resize honoured) and its output comes on channel 1.
- ``GET /stats/summary`` (see ``stats``), ``GET /healthz``.

TLS, both ways (Kubernetes' kubelet ↔ API server model; nobody sends a bearer token here):

- The agent serves with a self-signed certificate for its node (``<data_dir>/pki``, made once by
  ``openssl``) and publishes its SHA-256 on its own Node as ``SERVING_CERT_ANNOTATION`` (see
  ``Agent.register``); the API server pins it on every connection (``clusterctl/api/node_proxy.py``).
- Every caller must present a client certificate signed by the cluster CA — the CA this agent
  already trusts for the API server (its kubeconfig's certificate-authority, or ``ca_file``) —
  and good for client authentication (``CERT_REQUIRED``: no certificate, another CA's, or a
  server-only one fails the handshake). Of those, only the API server's
  (CN ``API_SERVER_CLIENT_CN``) is let in; any other name gets 403. A direct admin path with a
  bearer token no longer exists: nothing used it but one test (``clusterctl top``, the TUI and the
  benchmarks all go through the API server), and it was what let every agent collect the admin
  token. An agent without a cluster CA (a plain-HTTP test cluster) refuses every caller.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import pty
import ssl
import struct
import termios
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from node_runtime.logs import LogNotFound
from node_runtime.stats import summary

if TYPE_CHECKING:
    from node_runtime.agent import Agent

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
#: on the agent's own Node: SHA-256 (hex) of its serving certificate's DER bytes, which the API server pins
SERVING_CERT_ANNOTATION = "clusterctl.io/serving-cert-sha256"
#: the subject CN of the API server's client certificate (``clusterctl.api.auth.KUBELET_CLIENT_CN``)
API_SERVER_CLIENT_CN = "clusterctl-apiserver-kubelet-client"


def self_signed(pki: Path, node: str, address: str) -> tuple[Path, Path]:
    """A key + self-signed certificate for this node's endpoint (made once, by ``openssl``, so the
    agent never loads a crypto library it would carry in memory for its whole life)."""
    import ipaddress
    import subprocess
    pki.mkdir(parents=True, exist_ok=True)
    crt, key_path = pki / "agent.crt", pki / "agent.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    san = f"DNS:{node}"
    try:
        ipaddress.ip_address(address)
        san += f",IP:{address}"
    except ValueError:
        pass
    out = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", str(key_path), "-out", str(crt), "-days", "3650", "-subj", f"/CN=system:node:{node}",
                          "-addext", f"subjectAltName={san}"], capture_output=True, text=True)
    if out.returncode != 0:
        from node_runtime.errors import NodeRuntimeError
        raise NodeRuntimeError(f"cannot make the agent's certificate with openssl: {out.stderr.strip()}")
    os.chmod(key_path, 0o600)
    return crt, key_path


def cert_sha256(crt: Path) -> str:
    """SHA-256 (hex) of a PEM certificate's DER bytes: what TLS peers see and pin."""
    try:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(crt.read_text())).hexdigest()
    except (OSError, ValueError) as exc:
        from node_runtime.errors import NodeRuntimeError
        raise NodeRuntimeError(f"cannot read the agent's certificate {crt}: {exc}") from exc


def endpoint_tls(crt: Path, key: Path, *, ca_file: str | None, ca_data: bytes | None) -> ssl.SSLContext:
    """Serve with this node's certificate and require a client certificate from the cluster CA
    (only that CA: the machine's trust store is never loaded for clients)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(crt), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca_data:
        ctx.load_verify_locations(cadata=ca_data.decode())
    elif ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    else:
        log.warning("the agent has no cluster CA (its API connection names none): its endpoint refuses every caller, "
                    "so logs/exec/stats of this node are unavailable")
    return ctx


class AgentServer:
    def __init__(self, agent: Agent):
        self.agent = agent
        self.cert_sha256 = ""
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str, port: int) -> int:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self.exec)
        app.router.add_get("/stats/summary", self.stats)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        crt, key = self_signed(self.agent.config.dir("pki"), self.agent.config.node_name, self.agent.node_ip)
        self.cert_sha256 = cert_sha256(crt)
        creds = getattr(self.agent.client, "credentials", None)
        try:
            ctx = endpoint_tls(crt, key, ca_file=getattr(creds, "ca_file", None), ca_data=getattr(creds, "ca_data", None))
        except (OSError, ssl.SSLError) as exc:
            from node_runtime.errors import NodeRuntimeError
            raise NodeRuntimeError(f"cannot set up the agent endpoint's TLS (certificate {crt}, cluster CA "
                                   f"{getattr(creds, 'ca_file', None) or 'inline'}): {exc}") from exc
        site = web.TCPSite(self._runner, host, port, ssl_context=ctx, reuse_address=True)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ auth

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        # the handshake already proved the certificate is the cluster CA's and fit for client use
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        if not peer:
            return _refuse(401, "Unauthorized", "the node endpoint needs the API server's client certificate")
        cn = next((value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"), None)
        if cn != API_SERVER_CLIENT_CN:
            return _refuse(403, "Forbidden", f"only the API server (client certificate CN={API_SERVER_CLIENT_CN}) may use "
                                             f"the endpoint of node {self.agent.config.node_name}, not CN={cn}")
        return await handler(request)

    # ------------------------------------------------------------------ handlers

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(summary(self.agent))

    def _worker(self, request: web.Request):
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        worker = self.agent.workers.get(f"{ns}/{name}")
        if worker is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found on node {self.agent.config.node_name}')
        return worker

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker(request)
        container = request.match_info["container"]
        q = request.query
        previous = q.get("previous") in ("true", "1")
        logs = self.agent.logs
        try:
            path = logs.find(worker.namespace, worker.name, worker.uid, container, previous=previous)
        except LogNotFound as exc:
            raise web.HTTPBadRequest(text=str(exc))
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        since = float(q["sinceSeconds"]) if q.get("sinceSeconds") else None
        timestamps = q.get("timestamps") in ("true", "1")
        data = await asyncio.to_thread(logs.read, path, tail_lines=tail, limit_bytes=limit, since_seconds=since, timestamps=timestamps)
        if q.get("follow") not in ("true", "1") or previous:
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        await resp.write(data)
        sent = len(data)
        start = path.stat().st_size

        def newer():
            inst = logs.instances(worker.namespace, worker.name, worker.uid, container)
            return inst[-1] if inst else None

        def alive() -> bool:
            rec = next((r for r in worker.init + worker.containers if r.name == container), None)
            return self.agent.workers.get(f"{worker.namespace}/{worker.name}") is worker and rec is not None and not rec.done

        async for chunk in logs.follow(path, newer, start=start, timestamps=timestamps, alive=alive):
            if limit is not None:
                chunk = chunk[: max(0, limit - sent)]
            await resp.write(chunk)
            sent += len(chunk)
            if limit is not None and sent >= limit:
                break
        await resp.write_eof()
        return resp

    async def exec(self, request: web.Request) -> web.StreamResponse:
        worker = self._worker(request)
        container = request.match_info["container"]
        rec = next((r for r in worker.init + worker.containers if r.name == container), None)
        if rec is None or not rec.runtime_id or not self.agent.runtime.is_running(rec.runtime_id):
            raise web.HTTPBadRequest(text=f'container "{container}" in pod "{worker.name}" is not running')
        command = request.query.getall("command", [])
        if not command:
            raise web.HTTPBadRequest(text="you must specify at least one command for the container")
        tty = request.query.get("tty") in ("true", "1")
        want_stdin = request.query.get("stdin") in ("true", "1")
        ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        v5 = ws.ws_protocol == "v5.channel.k8s.io"
        try:
            argv = self.agent.runtime.exec_argv(rec.runtime_id, command)
        except Exception as exc:  # noqa: BLE001 - reported to the client on the error channel
            await ws.send_bytes(bytes([ERROR]) + json.dumps(_failure(str(exc))).encode())
            await ws.close()
            return ws
        env = _container_env(self.agent.runtime, rec.runtime_id)
        code = await ExecSession(ws, argv, env, tty=tty, stdin=want_stdin, v5=v5).run()
        status = {"metadata": {}, "status": "Success"} if code == 0 else _failure(
            f"command terminated with non-zero exit code: error executing command {command}, exit code {code}", code)
        try:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
            await ws.close()
        except (ConnectionResetError, RuntimeError):
            pass
        return ws


def _refuse(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": code,
                              "reason": reason, "message": message}, status=code)


def _failure(message: str, code: int | None = None) -> dict:
    out = {"metadata": {}, "status": "Failure", "message": message}
    if code is not None:
        out.update(reason="NonZeroExitCode", details={"causes": [{"reason": "ExitCode", "message": str(code)}]})
    return out


def _container_env(runtime, cid: str) -> dict[str, str]:
    pid = getattr(runtime, "container_pid", lambda _c: None)(cid)
    env: dict[str, str] = {}
    if pid:
        try:
            # the workload's environment, read from the kernel (it is never kept in a file)
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            for item in raw.split(b"\0"):
                k, sep, v = item.partition(b"=")
                if sep:
                    env[k.decode(errors="replace")] = v.decode(errors="replace")
        except OSError:
            pass
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if "TERM" not in env:
        env["TERM"] = "xterm"
    return env


class ExecSession:
    """Relays one exec between a WebSocket (channel protocol) and a process (pipes or a pty)."""

    def __init__(self, ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], *, tty: bool, stdin: bool, v5: bool):
        self.ws, self.argv, self.env, self.tty, self.stdin, self.v5 = ws, argv, env, tty, stdin, v5

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        if self.tty:
            master, slave = pty.openpty()

            def child_setup() -> None:
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            proc = await asyncio.create_subprocess_exec(*self.argv, stdin=slave, stdout=slave, stderr=slave, env=self.env,
                                                        preexec_fn=child_setup)
            os.close(slave)
            os.set_blocking(master, False)
            out_done = loop.create_future()

            def readable() -> None:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    loop.remove_reader(master)
                    if not out_done.done():
                        out_done.set_result(None)
                    return
                asyncio.ensure_future(self._send(STDOUT, data))

            loop.add_reader(master, readable)
            pump = asyncio.create_task(self._pump_in(lambda d: os.write(master, d), None, master))
            code = await proc.wait()
            try:
                await asyncio.wait_for(out_done, 1.0)
            except asyncio.TimeoutError:
                loop.remove_reader(master)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            os.close(master)
            return code
        proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.PIPE if self.stdin else asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env)
        readers = [asyncio.create_task(self._relay(proc.stdout, STDOUT)), asyncio.create_task(self._relay(proc.stderr, STDERR))]
        pump = asyncio.create_task(self._pump_in(self._writer(proc), proc, None)) if self.stdin else None
        code = await proc.wait()
        await asyncio.gather(*readers, return_exceptions=True)
        if pump:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        return code

    def _writer(self, proc):
        def write(data: bytes) -> None:
            if proc.stdin and not proc.stdin.is_closing():
                proc.stdin.write(data)
        return write

    async def _send(self, channel: int, data: bytes) -> None:
        try:
            await self.ws.send_bytes(bytes([channel]) + data)
        except (ConnectionResetError, RuntimeError):
            pass

    async def _relay(self, stream: asyncio.StreamReader, channel: int) -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                return
            await self._send(channel, data)

    async def _pump_in(self, write, proc, master: int | None) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data:  # v1-style base64 channels are not supported
                    continue
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == STDIN:
                write(payload)
                if proc is not None and proc.stdin:
                    await proc.stdin.drain()
            elif channel == RESIZE and master is not None:
                try:
                    size = json.loads(payload)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", int(size.get("Height", 24)), int(size.get("Width", 80)), 0, 0))
                except (ValueError, OSError):
                    pass
            elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                if proc is not None and proc.stdin:
                    proc.stdin.close()
                elif master is not None:
                    os.write(master, b"\x04")
        if proc is not None and proc.stdin and not proc.stdin.is_closing():
            proc.stdin.close()
