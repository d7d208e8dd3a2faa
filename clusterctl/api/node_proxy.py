"""``pods/log``, ``pods/exec`` and ``nodes/proxy``: the API server proxies them to node agents.

Like Kubernetes, the API server looks up the pod's node, connects to the agent's endpoint
(``https://<InternalIP>:<status.daemonEndpoints.kubeletEndpoint.Port>``, kubelet's paths
``/containerLogs/...`` and ``/exec/...``) and relays the answer: log bytes (streamed for
``follow``) and, for exec, WebSocket frames in both directions, with the subprotocol
(``v5.channel.k8s.io`` / ``v4.channel.k8s.io``) the agent accepted. Caller authorization
(``get pods/log``, ``get pods/exec``) has already happened in the router. ``GET
nodes/{name}/proxy/{path}`` relays a GET to the agent's ``/{path}`` (``kubectl top``'s
``stats/summary``); like Kubernetes' it is a cluster-admin privilege (node tokens are refused by
the router), and it keeps clients from ever talking to an agent themselves.

Both ends authenticate each other, and no bearer token ever goes to an agent:

- **The agent is pinned.** Each agent publishes the SHA-256 of its (self-signed) serving
  certificate on its own Node (``clusterctl.io/serving-cert-sha256``, set by the node at
  registration; a node token may write only its own Node). The API server checks the
  certificate the endpoint presents against it during the TLS handshake (aiohttp's
  ``Fingerprint`` on the connector), before a byte of the request is sent: anyone else answering
  on that address gets a handshake and nothing more, and the caller gets 502 naming the node.
  A Node without the annotation (an agent not yet registered, hollow nodes) is 503: nothing is
  dialled. Pinning instead of CA-signed agent certificates: a worker never needs the CA key or a
  signing round trip, and a restarted agent with a new certificate just republishes its hash.
- **The API server presents a client certificate** signed by the cluster CA
  (``pki/apiserver-kubelet-client.crt``, ``auth.ensure_kubelet_client_cert``), which the agent
  requires (see ``node_runtime/server.py``).

Registered by ``register(routes)`` (one line in ``server.make_app``), which also issues the client
certificate for a data directory made before it existed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from clusterctl.api import errors
from clusterctl.api.context import ApiContext
from clusterctl.api.rest import Target

log = logging.getLogger(__name__)

LOG_PARAMS = ("tailLines", "limitBytes", "sinceSeconds", "timestamps", "previous", "follow")
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
#: set by each agent on its own Node: the SHA-256 (hex) of its serving certificate's DER bytes
#: (the same name as ``node_runtime.server.SERVING_CERT_ANNOTATION``; a test keeps them equal)
SERVING_CERT_ANNOTATION = "clusterctl.io/serving-cert-sha256"


def register(routes) -> None:
    """Serve ``pods/log``, ``pods/exec`` and ``nodes/proxy`` through ``routes.extra_subresources``."""
    routes.extra_subresources[("pods", "log")] = pod_log
    routes.extra_subresources[("pods", "exec")] = pod_exec
    routes.extra_subresources[("nodes", "proxy")] = node_proxy_get
    _prepare_client_cert(getattr(routes, "ctx", None))

#: where the router leaves the path below ``nodes/{name}/proxy/``
PROXY_PATH_KEY = "clusterctl.node_proxy_path"


# --- the two ends' credentials ----------------------------------------------------------------

def _pki_dir(ctx: ApiContext | None) -> Path | None:
    cfg = getattr(ctx, "config", None)
    if cfg is None or not cfg.tls:
        return None
    return cfg.path(cfg.pki_dir)


def _prepare_client_cert(ctx: ApiContext | None) -> None:
    """At server start: a data directory made before agents required a client certificate gets one."""
    pki = _pki_dir(ctx)
    if pki is None or not (pki / "ca.key").exists():
        return
    from clusterctl.api.auth import ensure_kubelet_client_cert
    try:
        if ensure_kubelet_client_cert(pki):
            log.info("issued the API server's client certificate for node agents in %s", pki)
    except errors.ApiError as exc:
        log.warning("%s", exc.message)


_client_tls_cache: dict[Path, tuple[tuple[int, int], ssl.SSLContext]] = {}


def client_tls(ctx: ApiContext) -> ssl.SSLContext:
    """The TLS context the API server dials agents with: its client certificate, and no chain
    check of the agent's (self-signed) certificate — that one is pinned per node instead
    (``aiohttp.Fingerprint`` on the connector, see ``_agent_session``). Cached until the
    certificate file changes."""
    from clusterctl.api.auth import KUBELET_CLIENT_CERT, KUBELET_CLIENT_KEY, ensure_kubelet_client_cert
    pki = _pki_dir(ctx)
    if pki is None:
        raise errors.internal("the API server serves plain HTTP and has no cluster CA: it has no client certificate "
                              "to present to node agents")
    crt, key = pki / KUBELET_CLIENT_CERT, pki / KUBELET_CLIENT_KEY
    if not crt.exists():
        ensure_kubelet_client_cert(pki)
    try:
        st = crt.stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        cached = _client_tls_cache.get(crt)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.load_cert_chain(crt, key)
    except (OSError, ssl.SSLError) as exc:
        raise errors.internal(f"cannot load the API server's client certificate for node agents ({crt}, {key}): {exc}") from exc
    _client_tls_cache[crt] = (stamp, tls)
    return tls


@dataclass(frozen=True)
class AgentEndpoint:
    """Where a node's agent answers, and the serving certificate it must present there."""

    node: str
    base: str
    cert_sha256: bytes

    def session(self) -> aiohttp.ClientSession:
        """A session whose every connection is refused unless the agent's certificate matches
        the pin — checked in the handshake, before the request is written."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(self.cert_sha256)))

    def mismatch(self, exc: aiohttp.ServerFingerprintMismatch) -> errors.ApiError:
        return errors.ApiError(502, "BadGateway", (
            f'refusing to talk to the agent of node "{self.node}" at {self.base}: it presented a certificate with '
            f'SHA-256 {exc.got.hex()}, but node "{self.node}" published {exc.expected.hex()} ({SERVING_CERT_ANNOTATION}); '
            f"nothing was sent to it"))

    def unreachable(self, exc: BaseException) -> errors.ApiError:
        return errors.ApiError(503, "ServiceUnavailable",
                               f'cannot reach the agent of node "{self.node}" at {self.base}: {exc or type(exc).__name__}')

    def refused(self, status: int, text: str) -> errors.ApiError:
        return errors.ApiError(502, "BadGateway", f'the agent of node "{self.node}" refused the API server ({status}): '
                                                  f"{text[:300]}")


def agent_endpoint(node_name: str, node: dict) -> AgentEndpoint:
    status = node.get("status") or {}
    address = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not address or not port:
        raise errors.bad_request(f'node "{node_name}" publishes no agent endpoint')
    pin = ((node.get("metadata") or {}).get("annotations") or {}).get(SERVING_CERT_ANNOTATION)
    if not pin:
        raise errors.ApiError(503, "ServiceUnavailable", (
            f'node "{node_name}" has not published its agent\'s serving certificate ({SERVING_CERT_ANNOTATION}): '
            f"the API server does not connect to an agent it cannot authenticate"))
    try:
        digest = bytes.fromhex(str(pin))
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise errors.ApiError(503, "ServiceUnavailable",
                              f'node "{node_name}" published a malformed {SERVING_CERT_ANNOTATION}: {str(pin)[:80]!r}')
    host = f"[{address}]" if ":" in address else address
    return AgentEndpoint(node_name, f"https://{host}:{port}", digest)


async def _pod_and_node(ctx: ApiContext, t: Target) -> tuple[dict, AgentEndpoint]:
    item = await ctx.store.get(t.key)
    if item is None:
        raise errors.not_found("pods", t.name or "")
    pod = ctx.obj(item)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f'pod {t.name} does not have a host assigned')
    node_info = ctx.registry.by_kind("", "Node")
    node_item = await ctx.store.get(node_info.key(None, node_name))
    if node_item is None:
        raise errors.bad_request(f'node "{node_name}" of pod {t.name} not found')
    return pod, agent_endpoint(node_name, ctx.obj(node_item))


def _container(pod: dict, requested: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    all_names = [c["name"] for c in spec.get("initContainers") or []] + names
    if requested:
        if requested not in all_names:
            raise errors.bad_request(f'container {requested} is not valid for pod {pod["metadata"]["name"]}')
        return requested
    if len(names) == 1:
        return names[0]
    raise errors.bad_request(f'a container name must be specified for pod {pod["metadata"]["name"]}, '
                             f'choose one of: [{" ".join(names)}]')


# --- the three proxied calls ------------------------------------------------------------------

async def pod_log(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.StreamResponse:
    if request.method != "GET":
        raise errors.method_not_allowed(request.method, f"pods/{t.name}/log")
    pod, agent = await _pod_and_node(ctx, t)
    container = _container(pod, request.query.get("container"))
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    url = f"{agent.base}/containerLogs/{t.namespace}/{t.name}/{container}"
    tls = client_tls(ctx)
    session = agent.session()
    try:
        upstream = await session.get(url, params=params, ssl=tls, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    except aiohttp.ServerFingerprintMismatch as exc:
        await session.close()
        raise agent.mismatch(exc) from exc
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        await session.close()
        raise agent.unreachable(exc) from exc
    try:
        if upstream.status >= 400:
            text = (await upstream.read()).decode(errors="replace").strip()
            if upstream.status in (401, 403):
                raise agent.refused(upstream.status, text)
            raise errors.bad_request(text or f"agent answered {upstream.status}")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        upstream.release()
        await session.close()


async def pod_exec(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.StreamResponse:
    pod, agent = await _pod_and_node(ctx, t)
    container = _container(pod, request.query.get("container"))
    query = [(k, v) for k, v in request.query.items() if k != "container"]
    if not any(k == "command" for k, _ in query):
        raise errors.bad_request("you must specify at least one command for the container")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        # kubectl retries a failed WebSocket exec over SPDY: tell it what the agent would have
        # said (pin, reachability), then that only WebSocket is served. Nothing runs on the node.
        await _check_agent(ctx, agent)
        raise errors.bad_request("exec is served over WebSocket only (subprotocols v5.channel.k8s.io, v4.channel.k8s.io), "
                                 f"not {request.headers.get('Upgrade') or 'a plain request'}")
    url = f"{agent.base}/exec/{t.namespace}/{t.name}/{container}"
    requested = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    protocols = [p for p in requested if p in EXEC_PROTOCOLS] or list(EXEC_PROTOCOLS)
    tls = client_tls(ctx)
    session = agent.session()
    try:
        upstream = await session.ws_connect(url, params=query, protocols=protocols, max_msg_size=0, autoping=True, ssl=tls,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=10) if hasattr(aiohttp, "ClientWSTimeout") else 10)
    except aiohttp.ServerFingerprintMismatch as exc:
        await session.close()
        raise agent.mismatch(exc) from exc
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        if exc.status in (401, 403):
            raise agent.refused(exc.status, exc.message) from exc
        raise errors.bad_request(f"agent refused exec: {exc.status} {exc.message}") from exc
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        await session.close()
        raise agent.unreachable(exc) from exc
    ws = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else EXEC_PROTOCOLS, max_msg_size=0)
    try:
        await ws.prepare(request)

        async def down() -> None:
            async for msg in upstream:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                else:
                    break

        async def up() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await upstream.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await upstream.send_str(msg.data)
                else:
                    break

        relay_down = asyncio.create_task(down())
        relay_up = asyncio.create_task(up())
        await relay_down  # the agent closes after the status frame
        relay_up.cancel()
        await asyncio.gather(relay_up, return_exceptions=True)
        await ws.close()
        return ws
    finally:
        await upstream.close()
        await session.close()


async def _check_agent(ctx: ApiContext, agent: AgentEndpoint) -> None:
    """Dial the agent's ``/healthz`` as any proxied call would (pinned, with the client
    certificate) and raise what such a call would meet."""
    tls = client_tls(ctx)
    async with agent.session() as session:
        try:
            async with session.get(f"{agent.base}/healthz", ssl=tls,
                                   timeout=aiohttp.ClientTimeout(total=30, sock_connect=10)) as upstream:
                if upstream.status in (401, 403):
                    raise agent.refused(upstream.status, (await upstream.read()).decode(errors="replace").strip())
        except aiohttp.ServerFingerprintMismatch as exc:
            raise agent.mismatch(exc) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise agent.unreachable(exc) from exc


async def node_proxy_get(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        raise errors.method_not_allowed(request.method, f"nodes/{t.name}/proxy")
    node_item = await ctx.store.get(t.key)
    if node_item is None:
        raise errors.not_found("nodes", t.name or "")
    path = request.get(PROXY_PATH_KEY, "")
    agent = agent_endpoint(t.name or "", ctx.obj(node_item))
    tls = client_tls(ctx)
    async with agent.session() as session:
        try:
            async with session.get(f"{agent.base}/{path}", params=request.query, ssl=tls,
                                   timeout=aiohttp.ClientTimeout(total=30, sock_connect=10)) as upstream:
                body = await upstream.read()
                if upstream.status >= 400:
                    text = body.decode(errors="replace").strip()
                    if upstream.status in (401, 403):
                        raise agent.refused(upstream.status, text)
                    raise errors.ApiError(upstream.status if upstream.status < 500 else 503, "ServiceUnavailable" if upstream.status >= 500
                                          else "BadRequest", f"node {t.name} answered {upstream.status} for /{path}: {text[:300]}")
                return web.Response(body=body, status=upstream.status,
                                    content_type=(upstream.content_type or "application/octet-stream"))
        except aiohttp.ServerFingerprintMismatch as exc:
            raise agent.mismatch(exc) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise agent.unreachable(exc) from exc
