"""``pods/log``, ``pods/exec`` and ``nodes/proxy``: the API server proxies them to node agents.

Like Kubernetes, the API server looks up the pod's node, connects to the agent's endpoint
(``https://<InternalIP>:<status.daemonEndpoints.kubeletEndpoint.Port>``, kubelet's paths
``/containerLogs/...`` and ``/exec/...``) and relays the answer: log bytes (streamed for
``follow``) and, for exec, WebSocket frames in both directions, with the subprotocol
(``v5.channel.k8s.io`` / ``v4.channel.k8s.io``) the agent accepted. The agent's self-signed
certificate is not verified; instead the API server presents its own admin token, which the agent
checks with the API server (see ``node_runtime/server.py``). Caller authorization (``get pods/log``,
``get pods/exec``) has already happened in the router. ``GET nodes/{name}/proxy/{path}`` relays a
GET to the agent's ``/{path}`` (``kubectl top``'s ``stats/summary``); like Kubernetes' it is a
cluster-admin privilege (node tokens are refused by the router), and it keeps clients from ever
sending their own token to an agent whose certificate they cannot check.

Registered by ``register(routes)`` (two lines in ``server.make_app``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from clusterctl.api import errors
from clusterctl.api.context import ApiContext
from clusterctl.api.rest import Target

log = logging.getLogger(__name__)

LOG_PARAMS = ("tailLines", "limitBytes", "sinceSeconds", "timestamps", "previous", "follow")
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


def register(routes) -> None:
    """Serve ``pods/log`` and ``pods/exec`` through ``routes.extra_subresources``."""
    routes.extra_subresources[("pods", "log")] = pod_log
    routes.extra_subresources[("pods", "exec")] = pod_exec
    routes.extra_subresources[("nodes", "proxy")] = node_proxy_get

#: where the router leaves the path below ``nodes/{name}/proxy/``
PROXY_PATH_KEY = "clusterctl.node_proxy_path"


def _admin_token(ctx: ApiContext) -> str:
    from clusterctl.client.kubeconfig import load_kubeconfig
    if ctx.kubeconfig is None:
        raise errors.internal("the API server has no admin credential to reach node agents with")
    token = load_kubeconfig(str(ctx.kubeconfig)).bearer_token()
    if not token:
        raise errors.internal("the admin kubeconfig has no token")
    return token


async def _pod_and_node(ctx: ApiContext, t: Target) -> tuple[dict, str]:
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
    return pod, _agent_base(node_name, ctx.obj(node_item))


def _agent_base(node_name: str, node: dict) -> str:
    status = node.get("status") or {}
    address = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not address or not port:
        raise errors.bad_request(f'node "{node_name}" publishes no agent endpoint')
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


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


async def pod_log(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.StreamResponse:
    if request.method != "GET":
        raise errors.method_not_allowed(request.method, f"pods/{t.name}/log")
    pod, base = await _pod_and_node(ctx, t)
    container = _container(pod, request.query.get("container"))
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    url = f"{base}/containerLogs/{t.namespace}/{t.name}/{container}"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_INSECURE))
    try:
        upstream = await session.get(url, params=params, headers={"Authorization": f"Bearer {_admin_token(ctx)}"},
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        await session.close()
        raise errors.internal(f"cannot reach the agent of pod {t.name}: {exc}") from exc
    try:
        if upstream.status >= 400:
            text = (await upstream.read()).decode(errors="replace").strip()
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
    pod, base = await _pod_and_node(ctx, t)
    container = _container(pod, request.query.get("container"))
    query = [(k, v) for k, v in request.query.items() if k != "container"]
    if not any(k == "command" for k, _ in query):
        raise errors.bad_request("you must specify at least one command for the container")
    url = f"{base}/exec/{t.namespace}/{t.name}/{container}"
    requested = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    protocols = [p for p in requested if p in EXEC_PROTOCOLS] or list(EXEC_PROTOCOLS)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_INSECURE))
    try:
        upstream = await session.ws_connect(url, params=query, protocols=protocols, max_msg_size=0, autoping=True,
                                            headers={"Authorization": f"Bearer {_admin_token(ctx)}"},
                                            timeout=aiohttp.ClientWSTimeout(ws_close=10) if hasattr(aiohttp, "ClientWSTimeout") else 10)
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        raise errors.bad_request(f"agent refused exec: {exc.status} {exc.message}") from exc
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        await session.close()
        raise errors.internal(f"cannot reach the agent of pod {t.name}: {exc}") from exc
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


async def node_proxy_get(ctx: ApiContext, t: Target, request: web.Request, raw: bytes) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        raise errors.method_not_allowed(request.method, f"nodes/{t.name}/proxy")
    node_item = await ctx.store.get(t.key)
    if node_item is None:
        raise errors.not_found("nodes", t.name or "")
    path = request.get(PROXY_PATH_KEY, "")
    url = f"{_agent_base(t.name or '', ctx.obj(node_item))}/{path}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_INSECURE)) as session:
        try:
            async with session.get(url, params=request.query, headers={"Authorization": f"Bearer {_admin_token(ctx)}"},
                                   timeout=aiohttp.ClientTimeout(total=30, sock_connect=10)) as upstream:
                body = await upstream.read()
                if upstream.status >= 400:
                    text = body.decode(errors="replace").strip()
                    raise errors.ApiError(upstream.status if upstream.status < 500 else 503, "ServiceUnavailable" if upstream.status >= 500
                                          else "BadRequest", f"node {t.name} answered {upstream.status} for /{path}: {text[:300]}")
                return web.Response(body=body, status=upstream.status,
                                    content_type=(upstream.content_type or "application/octet-stream"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable", f"cannot reach the agent of node {t.name}: {exc}") from exc
