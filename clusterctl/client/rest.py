"""``ApiClient``: the one way every clusterctl component talks to the API server.

Plain dicts in, plain dicts out (the objects are Kubernetes JSON; no generated models). HTTPS is
verified against the cluster CA from the kubeconfig and every request carries the bearer token.
Resources are addressed by plural/kind/short name or by an object's ``apiVersion``+``kind``
(``resources.py``), with discovery as the fallback for kinds the static table does not know.

Failure policy: a refused connection is retried for every verb (nothing reached the server);
other connection failures are retried only for idempotent verbs (GET, PUT — guarded by
resourceVersion —, DELETE), with exponential backoff and an injectable ``sleep``. A ``503`` with
``Retry-After`` (the server did not serve the request, e.g. its etcd is electing a leader) is retried
for every verb after that delay (capped at ``max_backoff``), as client-go does. Any other non-2xx
answer raises the ``ApiError`` subclass matching its Kubernetes ``Status``. ``watch()`` streams
``(type, object)`` and turns a 410 into ``WatchExpired`` so informers know to re-list.

Several API servers (``ClusterCredentials.all_servers()``, an HA control plane with no load
balancer in front): ``server`` is the one in use. A request that cannot reach it (connection
refused or reset before an answer, connect timeout) goes to the next server at once, and the one
that answers is kept for later requests; an HTTP answer, 4xx or 5xx, is never a reason to switch.
This is an aiohttp client middleware on the session, so everything that uses the client's session
with ``client.server + path`` (Table requests, log streams, exec) fails over the same way. Each
server must present a certificate for its own address (bootstrap's servers share one with all of
them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl

from clusterctl.client.errors import (
    ApiConnectionError,
    ApiError,
    NotFound,
    WatchExpired,
    api_error_from_status,
)
from clusterctl.client.kubeconfig import ClusterCredentials, load_kubeconfig
from clusterctl.client.resources import ResourceTable, ResourceType

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})


def object_key(obj: Obj) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects): the work-queue key."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of ``object_key``."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


class ApiClient:
    """An aiohttp session bound to one cluster's credentials."""

    def __init__(
        self,
        credentials: ClusterCredentials,
        *,
        max_connections: int = 64,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        request_timeout: float = 60.0,
        connect_timeout: float = 5.0,         # per connection attempt, when there are several servers
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        user_agent: str = "clusterctl",
    ) -> None:
        self.credentials = credentials
        self.servers = credentials.all_servers()
        self._current = 0
        self.namespace = credentials.namespace
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.user_agent = user_agent
        self._sleep = sleep
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._ssl = credentials.ssl_context()
        self.resources = ResourceTable()
        self._discovered = False

    @property
    def server(self) -> str:
        """The API server requests go to now (the last one that answered)."""
        return self.servers[self._current]

    @server.setter
    def server(self, url: str) -> None:
        url = url.rstrip("/")
        if url not in self.servers:
            self.servers.insert(0, url)
        self._current = self.servers.index(url)

    async def _failover(self, req: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        """Client middleware: a request to one of the servers that cannot reach it tries the others."""
        url = str(req.url)
        first = next((i for i, server in enumerate(self.servers) if url.startswith(server + "/")), None)
        if first is None:
            return await handler(req)
        path = url[len(self.servers[first]):]
        for step in range(len(self.servers)):
            index = (first + step) % len(self.servers)
            if step:
                target = yarl.URL(self.servers[index] + path, encoded=True)
                req.url = target
                req.headers[aiohttp.hdrs.HOST] = target.host_port_subcomponent or target.raw_authority
            try:
                resp = await handler(req)
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError):
                raise  # a certificate that does not verify is a configuration error, not an outage
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # nothing reached this server: any verb may go to the next one
                if step == len(self.servers) - 1:
                    raise
                log.warning("API server %s unreachable (%s); trying %s", self.servers[index], exc,
                            self.servers[(index + 1) % len(self.servers)])
                continue
            if index != self._current:
                log.info("API server %s answers; using it from now on", self.servers[index])
                self._current = index
            return resp
        raise AssertionError("unreachable")

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, *, context: str | None = None, **kwargs: Any) -> ApiClient:
        return cls(load_kubeconfig(path, context=context), **kwargs)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections, limit_per_host=self._max_connections)
            headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
            middlewares = (self._failover,) if len(self.servers) > 1 else ()
            self._session = aiohttp.ClientSession(connector=connector, headers=headers, middlewares=middlewares,
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    def _auth_headers(self) -> dict[str, str]:
        token = self.credentials.bearer_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    # ---------------------------------------------------------------- raw requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON (or text if ``raw``); raise ``ApiError`` on non-2xx."""
        headers = self._auth_headers()
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        query = _clean_params(params)
        attempt = 0
        while True:
            url = self.server + path
            total = timeout or self.request_timeout
            retry_after: float | None = None
            try:
                async with self._get_session().request(
                    method, url, params=query, data=data, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=total, sock_connect=self._sock_connect(total)),
                ) as resp:
                    payload = await resp.read()
                    if resp.status == 503 and attempt < self.retries:
                        retry_after = _retry_after(resp.headers.get("Retry-After"))
                    if resp.status >= 400 and retry_after is None:
                        raise _error_from_response(resp.status, resp.reason or "", payload, method, path)
                    if retry_after is None:
                        if raw:
                            return payload.decode("utf-8", "replace")
                        return orjson.loads(payload) if payload else {}
                    # 503 + Retry-After: the server did not serve it (its store electing a leader)
                    # and says when to come back — what client-go does too
                    err = _error_from_response(resp.status, resp.reason or "", payload, method, path)
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                # A certificate that does not verify will not verify on retry either.
                raise ApiConnectionError(f"{method} {url}: TLS verification failed (is the kubeconfig's CA this cluster's?): {exc}") from exc
            except aiohttp.ClientConnectorError as exc:
                # Nothing reached the server: safe to retry any verb.
                err: Exception = exc
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                # the server went away or stalled mid-request: the next attempt starts elsewhere
                self._skip(url)
                if method not in IDEMPOTENT:
                    raise ApiConnectionError(f"{method} {url} failed: {exc or type(exc).__name__}") from exc
                err = exc
            attempt += 1
            if attempt > self.retries:
                raise ApiConnectionError(f"{method} {url} failed after {attempt} attempts: {err or type(err).__name__}") from err
            delay = min(self.max_backoff, retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1))
            log.debug("retrying %s %s in %.2fs after %r", method, url, delay, err)
            await self._sleep(delay)

    def _sock_connect(self, limit: float) -> float | None:
        """How long one connection attempt may take: short when another server could answer."""
        return min(limit, self.connect_timeout) if len(self.servers) > 1 else None

    def _skip(self, url: str) -> None:
        """Stop preferring the server ``url`` went to (if it is still the current one)."""
        if len(self.servers) > 1 and url.startswith(self.server + "/"):
            gone = self.server
            self._current = (self._current + 1) % len(self.servers)
            log.warning("API server %s stopped answering; trying %s next", gone, self.server)

    # ---------------------------------------------------------------- addressing

    async def resource_type(self, resource: str, api_version: str | None = None) -> ResourceType:
        """Resolve a resource name or kind; fall back to discovery once for unknown names."""
        rt = self.resources.lookup(resource, api_version)
        if rt is None and not self._discovered:
            await self.discover()
            rt = self.resources.lookup(resource, api_version)
        if rt is None:
            what = f"{api_version} {resource}" if api_version else resource
            raise NotFound({"code": 404, "reason": "NotFound", "message": f"the server doesn't have a resource type {what!r}"})
        return rt

    async def discover(self) -> None:
        """Read ``/api`` and ``/apis`` and add every top-level resource to the table."""
        self._discovered = True
        group_versions = ["v1"]
        try:
            apis = await self.request("GET", "/apis")
        except ApiError:
            apis = {}
        for group in apis.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            if preferred:
                group_versions.append(preferred)
        for gv in group_versions:
            path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            try:
                doc = await self.request("GET", path)
            except ApiError:
                continue
            group, _, version = gv.rpartition("/")
            for res in doc.get("resources") or []:
                if "/" in res.get("name", ""):
                    continue
                self.resources.add(ResourceType(group, version, res["kind"], res["name"], bool(res.get("namespaced")), tuple(res.get("shortNames") or ())))

    async def _type_of(self, obj: Obj) -> ResourceType:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if not kind or not api_version:
            raise ValueError("object needs apiVersion and kind")
        return await self.resource_type(kind, api_version)

    def _ns(self, rt: ResourceType, namespace: str | None, obj: Obj | None = None) -> str | None:
        if not rt.namespaced:
            return None
        if namespace:
            return namespace
        if obj is not None and (obj.get("metadata") or {}).get("namespace"):
            return obj["metadata"]["namespace"]
        return self.namespace

    # ---------------------------------------------------------------- verbs

    async def get(self, resource: str, name: str, *, namespace: str | None = None, api_version: str | None = None, subresource: str | None = None) -> Obj:
        rt = await self.resource_type(resource, api_version)
        return await self.request("GET", rt.path(namespace=self._ns(rt, namespace), name=name, subresource=subresource))

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        resource_version: str | None = None,
        api_version: str | None = None,
    ) -> Obj:
        """List (all namespaces when ``namespace`` is None); with ``limit``, follow ``continue`` pages."""
        rt = await self.resource_type(resource, api_version)
        path = rt.path(namespace=namespace if rt.namespaced else None)
        params: dict[str, Any] = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit, "resourceVersion": resource_version}
        result = await self.request("GET", path, params=params)
        while limit and (result.get("metadata") or {}).get("continue"):
            params["continue"] = result["metadata"].pop("continue")
            params.pop("resourceVersion", None)
            page = await self.request("GET", path, params=params)
            result.setdefault("items", []).extend(page.get("items") or [])
            if (page.get("metadata") or {}).get("continue"):
                result["metadata"]["continue"] = page["metadata"]["continue"]
        result.setdefault("items", [])
        return result

    async def create(self, obj: Obj, *, namespace: str | None = None, dry_run: bool = False) -> Obj:
        rt = await self._type_of(obj)
        params = {"dryRun": "All" if dry_run else None}
        return await self.request("POST", rt.path(namespace=self._ns(rt, namespace, obj)), params=params, body=obj)

    async def update(self, obj: Obj, *, namespace: str | None = None, subresource: str | None = None) -> Obj:
        """PUT the whole object; a stale ``metadata.resourceVersion`` raises ``Conflict``."""
        rt = await self._type_of(obj)
        name = obj["metadata"]["name"]
        return await self.request("PUT", rt.path(namespace=self._ns(rt, namespace, obj), name=name, subresource=subresource), body=obj)

    async def update_status(self, obj: Obj, *, namespace: str | None = None) -> Obj:
        return await self.update(obj, namespace=namespace, subresource="status")

    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        type: str = "merge",
        subresource: str | None = None,
        api_version: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        """PATCH with ``type`` = merge | json | strategic | apply."""
        try:
            content_type = PATCH_CONTENT_TYPES[type]
        except KeyError:
            raise ValueError(f"unknown patch type {type!r} (merge, json, strategic, apply)") from None
        rt = await self.resource_type(resource, api_version)
        params = {"fieldManager": field_manager or ("clusterctl" if type == "apply" else None)}
        return await self.request("PATCH", rt.path(namespace=self._ns(rt, namespace), name=name, subresource=subresource), params=params, body=patch, content_type=content_type)

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, str] | None = None,
        api_version: str | None = None,
    ) -> Obj:
        rt = await self.resource_type(resource, api_version)
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", rt.path(namespace=self._ns(rt, namespace), name=name), body=body)

    async def scale(self, resource: str, name: str, replicas: int, *, namespace: str | None = None) -> Obj:
        """Set ``spec.replicas`` through the ``scale`` subresource; returns the autoscaling/v1 Scale."""
        return await self.patch(resource, name, {"spec": {"replicas": replicas}}, namespace=namespace, subresource="scale")

    async def bind(self, namespace: str, pod: str, node: str, *, uid: str | None = None) -> Obj:
        """Assign a pod to a node through ``pods/binding`` (what a scheduler does)."""
        meta: Obj = {"name": pod, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": meta, "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        return await self.request("POST", f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/binding", body=body)

    async def evict(self, namespace: str, pod: str, *, grace_period_seconds: int | None = None) -> Obj:
        """Ask to evict a pod through ``pods/eviction`` (honours PodDisruptionBudgets; 429 if refused)."""
        body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
        if grace_period_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_period_seconds}
        return await self.request("POST", f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/eviction", body=body)

    async def log(self, namespace: str, pod: str, *, container: str | None = None, tail_lines: int | None = None, previous: bool = False, timestamps: bool = False) -> str:
        params = {"container": container, "tailLines": tail_lines, "previous": previous or None, "timestamps": timestamps or None}
        return await self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/log", params=params, raw=True)

    async def log_stream(self, namespace: str, pod: str, *, container: str | None = None, tail_lines: int | None = None) -> AsyncIterator[bytes]:
        """Follow a container's log (``follow=true``): yields chunks as the node sends them."""
        params = _clean_params({"container": container, "tailLines": tail_lines, "follow": "true"})
        url = f"{self.server}/api/v1/namespaces/{namespace}/pods/{quote(pod)}/log"
        async with self._get_session().get(url, params=params, headers=self._auth_headers(), timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout)) as resp:
            if resp.status >= 400:
                raise _error_from_response(resp.status, resp.reason or "", await resp.read(), "GET", url)
            async for chunk in resp.content.iter_any():
                yield chunk

    def watch(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        bookmarks: bool = False,
        api_version: str | None = None,
    ) -> WatchStream:
        """An async iterator of ``(type, object)``; see ``WatchStream``."""
        return WatchStream(self, resource, namespace=namespace, resource_version=resource_version, label_selector=label_selector,
                           field_selector=field_selector, timeout_seconds=timeout_seconds, bookmarks=bookmarks, api_version=api_version)


class WatchStream:
    """One watch request: ``async for type, obj in stream``.

    ``resource_version`` follows every event and BOOKMARK, so a caller can resume from it after the
    stream ends (server timeout) or breaks. BOOKMARKs are consumed here unless ``bookmarks=True``.
    An ``ERROR`` event or HTTP answer with code 410 raises ``WatchExpired``; other errors raise
    ``ApiError``. Iteration ends normally when the server closes the stream.
    """

    def __init__(self, client: ApiClient, resource: str, *, namespace: str | None, resource_version: str | None, label_selector: str | None,
                 field_selector: str | None, timeout_seconds: int | None, bookmarks: bool, api_version: str | None) -> None:
        self._client = client
        self._resource = resource
        self._api_version = api_version
        self.namespace = namespace
        self.resource_version = resource_version
        self._params: dict[str, Any] = {"watch": "1", "allowWatchBookmarks": "true", "labelSelector": label_selector,
                                        "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds}
        self._yield_bookmarks = bookmarks
        self._gen: AsyncIterator[tuple[str, Obj]] | None = None

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> tuple[str, Obj]:
        if self._gen is None:
            self._gen = self._events()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    async def _events(self) -> AsyncIterator[tuple[str, Obj]]:
        client = self._client
        rt = await client.resource_type(self._resource, self._api_version)
        path = rt.path(namespace=self.namespace if rt.namespaced else None)
        params = dict(self._params, resourceVersion=self.resource_version)
        url = client.server + path
        try:
            resp = await client._get_session().get(url, params=_clean_params(params), headers=client._auth_headers(),
                                                   timeout=aiohttp.ClientTimeout(total=None, sock_connect=client._sock_connect(client.request_timeout) or client.request_timeout,
                                                                                 sock_read=None))
        except aiohttp.ClientError as exc:
            raise ApiConnectionError(f"watch {url} failed: {exc}") from exc
        async with resp:
            if resp.status == 410:
                raise WatchExpired(f"watch {path} from resourceVersion {self.resource_version} expired", resource_version=self.resource_version)
            if resp.status >= 400:
                raise _error_from_response(resp.status, resp.reason or "", await resp.read(), "GET", path)
            buf = b""
            try:
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    if b"\n" not in chunk:
                        continue
                    *lines, buf = buf.split(b"\n")  # one split per chunk: linear in its size
                    for line in lines:
                        if not line.strip():
                            continue
                        out = self._handle(orjson.loads(line), path)
                        if out is not None:
                            yield out
            except aiohttp.ClientError as exc:
                raise ApiConnectionError(f"watch {url} broke: {exc}") from exc
            if buf.strip():
                out = self._handle(orjson.loads(buf), path)
                if out is not None:
                    yield out

    def _handle(self, event: Obj, path: str) -> tuple[str, Obj] | None:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            if int(obj.get("code") or 0) == 410:
                raise WatchExpired(f"watch {path} expired: {obj.get('message', '')}", resource_version=self.resource_version)
            raise api_error_from_status(obj, method="WATCH", path=path)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if etype == "BOOKMARK" and not self._yield_bookmarks:
            return None
        return str(etype), obj


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), or None."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _clean_params(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items() if v is not None}


def _error_from_response(status: int, reason: str, payload: bytes, method: str, path: str) -> ApiError:
    body: Any = None
    try:
        body = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        body = None
    if not (isinstance(body, dict) and body.get("kind") == "Status"):
        body = {"kind": "Status", "status": "Failure", "code": status, "reason": reason.replace(" ", ""),
                "message": payload.decode("utf-8", "replace")[:500] if payload else reason}
    body.setdefault("code", status)
    return api_error_from_status(body, method=method, path=path)
