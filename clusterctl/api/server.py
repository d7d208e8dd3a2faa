"""The aiohttp application: routing, discovery, version/health, OpenAPI, auth and error middleware.

Paths follow Kubernetes exactly (``/api/v1/...``, ``/apis/{group}/{version}/...``, namespaced
``.../namespaces/{ns}/{plural}/{name}/{subresource}``, the legacy ``/watch/`` prefix), and are
parsed here into a ``rest.Target``; the verb (get/list/watch/create/update/patch/delete/
deletecollection) comes from the method and ``?watch``. Discovery documents, ``/version`` and
``/openapi/v3`` are derived from the kinds registry. ``/openapi/v2`` is a 404 on purpose: kubectl
then uses v3 (the only OpenAPI it needs for ``apply`` and ``explain``).

Middleware order: errors (every failure is a ``Status``; a bug is a logged 500, never a dropped
connection) → authentication (bearer token; ``/healthz``, ``/livez``, ``/readyz``, ``/version``
are public as in Kubernetes) → the handler, which authorizes the parsed request.

``ApiServer`` owns one process's lifecycle: open and start the store, bootstrap the default
namespaces and the ``kubernetes`` Service, serve HTTPS, re-arm pending deletions after a restart,
and run ``extra_components`` (scheduler, controllers) beside the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import sys
from typing import Awaitable, Callable

import orjson
from aiohttp import web

import clusterctl
from clusterctl.api import errors, rest
from clusterctl.api.auth import (NODE_REFERENCED, Authenticator, Request as AuthRequest, TokenFile, User, authorize,
                                 authorize_node_create, authorize_pod, authorize_pod_reference)
from clusterctl.api.config import ControlPlaneConfig
from clusterctl.api.context import ApiContext, Component
from clusterctl.api.errors import ApiError
from clusterctl.api.kinds import SUBRESOURCE_KINDS, SUBRESOURCE_VERBS, KindInfo, Registry, server_registry
from clusterctl.api.rest import Target
from clusterctl.errors import ClusterctlError
from clusterctl.store.base import Store, StoreError, StoreUnavailable

log = logging.getLogger("clusterctl.api.server")

CTX_KEY = web.AppKey("ctx", ApiContext)
USER_KEY = web.RequestKey("user", User)
PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/healthz/", "/livez/", "/readyz/", "/version/"}
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: (plural, subresource) -> handler(ctx, target, request, raw) for subresources served by other
#: components (e.g. pods/log, pods/exec from the node runtime); listed in discovery too.
ExtraSubresource = Callable[[ApiContext, Target, web.Request, bytes], Awaitable[web.StreamResponse]]


# --- responses ---------------------------------------------------------------------------------

def status_response(exc: ApiError) -> web.Response:
    resp = web.Response(body=exc.body(), status=exc.code, content_type="application/json")
    for k, v in exc.headers.items():
        resp.headers[k] = v
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return status_response(exc)
    except web.HTTPException as exc:
        if exc.status == 404:
            return status_response(errors.path_not_found(request.path))
        if exc.status == 405:
            return status_response(errors.method_not_allowed(request.method, request.path))
        if exc.status == 413:
            return status_response(errors.too_large(request.app[CTX_KEY].config.max_body_bytes
                                                    if request.app[CTX_KEY].config else 3 * 1024 * 1024 // 2))
        if exc.status >= 500:
            raise
        return status_response(ApiError(exc.status, exc.reason or "BadRequest", exc.text or exc.reason or ""))
    except asyncio.CancelledError:
        raise
    except StoreError as exc:
        if isinstance(exc, StoreUnavailable):
            log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
            if exc.outcome_unknown:
                # a write that may have been applied: 504 (not retried blindly: a repeated POST could create twice)
                return status_response(errors.timeout(f"Timeout: the store did not confirm the write, which may or may "
                                                      f"not have been applied: {exc}"))
            return status_response(errors.store_unavailable(f"the store is unavailable: {exc}", retry_after=int(exc.retry_after)))
        log.exception("store error on %s %s", request.method, request.path)
        return status_response(ApiError(500, "InternalError", f"Internal error occurred: store: {exc}"))
    except (ConnectionResetError, ConnectionError):
        raise
    except RecursionError:
        return status_response(errors.bad_request("the request is nested too deeply to be processed"))
    except Exception as exc:  # noqa: BLE001 - a bug must become a 500 Status, not a dropped connection
        log.exception("internal error on %s %s", request.method, request.path_qs)
        return status_response(errors.internal(f"{type(exc).__name__}: {exc}"))


@web.middleware
async def auth_middleware(request: web.Request, handler):
    ctx: ApiContext = request.app[CTX_KEY]
    if request.path in PUBLIC_PATHS or ctx.authenticator is None:
        request[USER_KEY] = User("admin", ("system:masters",))
        return await handler(request)
    request[USER_KEY] = ctx.authenticator.authenticate(request.headers.get("Authorization"))
    return await handler(request)


# --- discovery ---------------------------------------------------------------------------------

def _storage_hash(info: KindInfo) -> str:
    import base64
    return base64.b64encode(hashlib.sha256(f"{info.group}/{info.version}/{info.kind}".encode()).digest()[:8]).decode()


def resource_list(registry: Registry, group: str, version: str, extra_subresources: dict) -> dict:
    resources = []
    for info in registry.in_group_version(group, version):
        entry = {"name": info.plural, "singularName": info.singular, "namespaced": info.namespaced,
                 "kind": info.kind, "verbs": list(info.verbs), "storageVersionHash": _storage_hash(info)}
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        resources.append(entry)
        subs = list(info.subresources) + [s for (p, s) in extra_subresources if p == info.plural and s not in info.subresources]
        for sub in subs:
            sg, sv, sk = SUBRESOURCE_KINDS.get(sub, (group, version, info.kind))
            sub_entry = {"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced,
                         "kind": sk, "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get", "create")))}
            if (sg, sv) != (group, version):
                sub_entry["group"], sub_entry["version"] = sg, sv
            resources.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def group_entry(group: str, versions: list[str]) -> dict:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


# --- routing -----------------------------------------------------------------------------------

class ApiRoutes:
    def __init__(self, ctx: ApiContext):
        self.ctx = ctx
        self.extra_subresources: dict[tuple[str, str], ExtraSubresource] = ctx.extra_subresources
        self._openapi_cache: dict[str, tuple[bytes, str]] = {}

    # public endpoints
    async def version(self, request: web.Request) -> web.Response:
        return rest.json_response({
            "major": clusterctl.KUBE_API_MAJOR, "minor": clusterctl.KUBE_API_MINOR,
            "gitVersion": f"v{clusterctl.KUBE_API_MAJOR}.{clusterctl.KUBE_API_MINOR}.0+clusterctl.{clusterctl.__version__}",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-11-26T00:00:00Z",
            "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}", "compiler": "cpython",
            "platform": f"{sys.platform}/amd64"})

    async def health(self, request: web.Request) -> web.Response:
        if request.path.startswith("/readyz") and not self.ctx.started:
            # listening, but still writing its bootstrap objects: not ready for clients yet
            return web.Response(status=503, text="[+]ping ok\n[-]poststarthook/clusterctl-bootstrap failed: not finished\n"
                                                 "readyz check failed\n")
        if request.query.get("verbose") is not None:
            return web.Response(text="[+]ping ok\n[+]store ok\nhealthz check passed\n")
        return web.Response(text="ok")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        raise errors.path_not_found(request.path)

    async def openapi_v3(self, request: web.Request) -> web.Response:
        from clusterctl.api import openapi
        tail = request.match_info.get("tail", "").strip("/")
        if not tail:
            return rest.json_response(openapi.openapi_v3_index(self.ctx.registry))
        cached = self._openapi_cache.get(tail)
        if cached is None:
            parts = tail.split("/")
            if parts[0] == "api" and len(parts) == 2:
                group, version = "", parts[1]
            elif parts[0] == "apis" and len(parts) == 3:
                group, version = parts[1], parts[2]
            else:
                raise errors.path_not_found(request.path)
            if version not in self.ctx.registry.group_versions().get(group, []):
                raise errors.path_not_found(request.path)
            body = orjson.dumps(openapi.openapi_v3_document(self.ctx.registry, group, version))
            cached = (body, hashlib.sha512(body).hexdigest()[:32].upper())
            self._openapi_cache[tail] = cached
        body, etag = cached
        if request.headers.get("If-None-Match") == f'"{etag}"':
            return web.Response(status=304)
        resp = web.Response(body=body, content_type="application/json")
        resp.headers["ETag"] = f'"{etag}"'
        resp.headers["Cache-Control"] = "public, immutable" if request.query.get("hash") else "no-cache, private"
        return resp

    # the Kubernetes API
    async def api(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        segments = [s for s in request.path.split("/") if s]
        registry = ctx.registry
        gv = registry.group_versions()
        if segments[0] == "api":
            if len(segments) == 1:
                self._only_get(request)
                host = request.host or "127.0.0.1"
                return rest.json_response({"kind": "APIVersions", "versions": ["v1"],
                                           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
            group, version, rest_parts = "", segments[1], segments[2:]
            if version not in gv.get("", []):
                raise errors.path_not_found(request.path)
        else:
            if len(segments) == 1:
                self._only_get(request)
                return rest.json_response({"kind": "APIGroupList", "apiVersion": "v1",
                                           "groups": [group_entry(g, vs) for g, vs in gv.items() if g]})
            group = segments[1]
            if group not in gv or not group:
                raise errors.path_not_found(request.path)
            if len(segments) == 2:
                self._only_get(request)
                return rest.json_response({"kind": "APIGroup", "apiVersion": "v1", **group_entry(group, gv[group])})
            version, rest_parts = segments[2], segments[3:]
            if version not in gv[group]:
                raise errors.path_not_found(request.path)
        if not rest_parts:
            self._only_get(request)
            return rest.json_response(resource_list(registry, group, version, self.extra_subresources))
        return await self._resource(request, group, version, rest_parts)

    @staticmethod
    def _only_get(request: web.Request) -> None:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(request.method, request.path)

    async def _resource(self, request: web.Request, group: str, version: str, parts: list[str]) -> web.StreamResponse:
        ctx = self.ctx
        watch_prefix = False
        if parts[0] == "watch":
            watch_prefix, parts = True, parts[1:]
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] not in ("status", "finalize"):
            namespace, parts = parts[1], parts[2:]
        if len(parts) > 3 and not group and namespace is None and parts[0] == "nodes" and parts[2] == "proxy":
            from clusterctl.api.node_proxy import PROXY_PATH_KEY
            request[PROXY_PATH_KEY] = "/".join(parts[3:])  # nodes/{name}/proxy/{path}: the path goes to the agent
            parts = parts[:3]
        if not parts or len(parts) > 3:
            raise errors.path_not_found(request.path)
        info = ctx.registry.by_resource(group, version, parts[0])
        if info is None or (namespace is not None and not info.namespaced):
            raise errors.path_not_found(request.path)
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        if sub is not None and sub not in info.subresources and (info.plural, sub) not in self.extra_subresources:
            raise errors.path_not_found(request.path)
        t = Target(info, namespace, name, sub)
        method = request.method
        watch = watch_prefix or request.query.get("watch") in ("1", "true", "True")
        verb = _verb(method, t, watch)
        user: User = request[USER_KEY]
        authz = AuthRequest(verb, info.plural, info.group, namespace, name, sub, request.query.get("fieldSelector", ""))
        authorize(user, authz)
        check_old = None
        if info.kind == "Pod" and not info.group and user.node_name is not None and name:
            def check_old(pod: dict, _user=user, _req=authz) -> None:
                authorize_pod(_user, _req, pod)
        if user.node_name is not None and info.plural in NODE_REFERENCED and not info.group:
            authorize_pod_reference(user, authz, await self._pods_on_node(namespace, user.node_name))
        raw = await self._body(request) if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        if verb == "create" and user.node_name is not None and info.plural == "nodes" and not info.group:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = {}
            authorize_node_create(user, authz, body if isinstance(body, dict) else {})   # NodeRestriction

        if info.namespaced and namespace is None and verb not in ("list", "watch"):
            raise errors.path_not_found(request.path)  # namespaced objects live under /namespaces/{ns}/
        if "storage" in info.extra:
            from clusterctl.api import conversion
            return await conversion.handle(ctx, t, request, verb, raw)
        if sub is not None and (info.plural, sub) in self.extra_subresources and sub not in info.subresources:
            return await self.extra_subresources[(info.plural, sub)](ctx, t, request, raw)
        if sub == "scale":
            from clusterctl.api.scale import handle_scale
            return await handle_scale(ctx, t, request, raw)
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed(method, f"{info.plural}/binding")
            from clusterctl.api.pod_actions import handle_binding
            return await handle_binding(ctx, t, request, raw)
        if sub == "eviction":
            if method != "POST":
                raise errors.method_not_allowed(method, f"{info.plural}/eviction")
            from clusterctl.api.pod_actions import handle_eviction
            return await handle_eviction(ctx, t, request, raw, authorize_old=check_old)
        if verb == "get":
            if check_old is not None:
                check_old(ctx.load(await rest.get_item(ctx, t)))
            return await rest.handle_get(ctx, t, request)
        if verb == "watch":
            from clusterctl.api.watch import handle_watch
            return await handle_watch(ctx, t, request)
        if verb == "list":
            return await rest.handle_list(ctx, t, request)
        if verb == "create":
            return await rest.handle_create(ctx, t, request, raw)
        if verb == "update":
            return await rest.handle_update(ctx, t, request, raw, authorize_old=check_old)
        if verb == "patch":
            return await rest.handle_patch(ctx, t, request, raw, authorize_old=check_old)
        if verb == "delete":
            return await rest.handle_delete(ctx, t, request, raw, authorize_old=check_old)
        if verb == "deletecollection":
            return await rest.handle_deletecollection(ctx, t, request, raw)
        raise errors.method_not_allowed(method, request.path)

    async def _pods_on_node(self, namespace: str | None, node: str) -> list[dict]:
        pod_info = self.ctx.registry.by_kind("", "Pod")
        pods = [self.ctx.load(item) for item in (await self.ctx.store.list(pod_info.prefix(namespace))).items]
        return [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]

    async def _body(self, request: web.Request) -> bytes:
        limit = self.ctx.config.max_body_bytes if self.ctx.config else 3 * 1024 * 1024 // 2
        if request.content_length is not None:
            if request.content_length > limit:
                raise errors.too_large(limit)
            return await request.read()
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise errors.too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)


def _verb(method: str, t: Target, watch: bool) -> str:
    collection = t.name is None
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "list" if collection else "get"
    if method == "POST":
        if collection:
            return "create"
        if t.subresource in ("binding", "eviction", "exec"):   # exec: kubectl's SPDY fallback POSTs
            return "create"
        raise errors.method_not_allowed(method, t.info.plural + "/" + (t.name or ""))
    if method == "PUT" and not collection:
        return "update"
    if method == "PATCH" and not collection:
        return "patch"
    if method == "DELETE":
        return "deletecollection" if collection else "delete"
    raise errors.method_not_allowed(method, t.info.plural)


def make_app(ctx: ApiContext) -> tuple[web.Application, ApiRoutes]:
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=64 * 1024 * 1024,
                          handler_args={"max_field_size": 65536})
    app[CTX_KEY] = ctx
    routes = ApiRoutes(ctx)
    from clusterctl.api import node_proxy
    node_proxy.register(routes)   # pods/log, pods/exec relayed to the node agent
    for p in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(p, routes.health)
        app.router.add_get(p + "/{tail:.*}", routes.health)
    app.router.add_get("/version", routes.version)
    app.router.add_get("/openapi/v2", routes.openapi_v2)
    app.router.add_get("/openapi/v3", routes.openapi_v3)
    app.router.add_get("/openapi/v3/{tail:.*}", routes.openapi_v3)
    app.router.add_route("*", "/api", routes.api)
    app.router.add_route("*", "/api/{tail:.*}", routes.api)
    app.router.add_route("*", "/apis", routes.api)
    app.router.add_route("*", "/apis/{tail:.*}", routes.api)
    return app, routes


# --- bootstrap ---------------------------------------------------------------------------------

async def bootstrap(ctx: ApiContext, *, server_port: int | None = None) -> None:
    """The objects every cluster has: the default namespaces and the ``kubernetes`` Service.

    With an HA control plane every API server runs this at once against one store: another server
    may create an object between this one's read and its create — its create wins, and ours fails
    with 409 (same name) or, for the Service, 422 (its clusterIP is taken now). Either is fine once
    the object exists; anything else, or a failure with the object still absent, is raised."""
    ns_info = ctx.registry.by_kind("", "Namespace")
    for name in BOOT_NAMESPACES:
        await _ensure_object(ctx, Target(ns_info, None), ns_info.key(None, name),
                             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    svc_info = ctx.registry.by_kind("", "Service")
    from clusterctl.api.allocation import kubernetes_service_ip
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
           "spec": {"clusterIP": kubernetes_service_ip(ctx), "type": "ClusterIP",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": server_port or 6443}]}}
    await _ensure_object(ctx, Target(svc_info, "default"), svc_info.key("default", "kubernetes"), svc)


async def _ensure_object(ctx: ApiContext, target: Target, key: str, obj: dict) -> None:
    if await ctx.store.get(key) is not None:
        return
    try:
        await rest.create_object(ctx, target, obj)
    except ApiError as exc:
        if exc.code not in (409, 422) or await ctx.store.get(key) is None:
            raise
        log.info("%s was created by another API server meanwhile", key)


class ListenError(ClusterctlError):
    """The API server could not open its listening socket."""


class ApiServer:
    """One API server process: store + app + site + background components."""

    def __init__(self, config: ControlPlaneConfig, *, store: Store | None = None,
                 extra_components: list[Component] | None = None, registry: Registry | None = None,
                 clock: Callable[[], float] | None = None):
        self.config = config
        self._store = store
        self.registry = registry or server_registry()
        self.extra_components = list(extra_components or [])
        self.clock = clock
        self.ctx: ApiContext | None = None
        self.routes: ApiRoutes | None = None
        self._runner: web.AppRunner | None = None
        self._component_tasks: list[asyncio.Task] = []
        self.port: int | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = self.config.bind_address if self.config.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        from clusterctl.api.auth import init_pki, server_ssl_context
        pki = self.config.path(self.config.pki_dir)
        if not (pki / "server.crt").exists():
            init_pki(pki, names=self.config.tls_names)
        return server_ssl_context(pki)

    async def start(self) -> None:
        from clusterctl.api.secrets_at_rest import SecretCodec
        from clusterctl.store import open_store
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(cfg.timings.store_start_timeout)
        while True:
            store = self._store or open_store(cfg.store_config)
            try:
                await store.start()
                break
            except StoreUnavailable as exc:
                # etcd started beside this server may still be forming its cluster (HA bootstrap
                # starts all three at once); exiting here left the API server down for good where
                # no service manager restarts it
                if loop.time() >= deadline:
                    raise
                log.warning("store not available yet, waiting for it: %s", exc)
                await asyncio.sleep(1.0)
        self._store = store
        tokens_path = cfg.path(cfg.tokens_file)
        authenticator = Authenticator(TokenFile.load(tokens_path)) if tokens_path.exists() else Authenticator(None, anonymous_admin=True)
        if not tokens_path.exists():
            log.warning("no tokens file at %s: every request is admin", tokens_path)
        codec = SecretCodec.from_file(cfg.path(cfg.encryption_key_file)) if cfg.encryption_key_file else SecretCodec(None)
        ctx = ApiContext(store=store, registry=self.registry, config=cfg, authenticator=authenticator, secrets=codec,
                         timings=cfg.timings, extra_components=self.extra_components, version=clusterctl.__version__)
        if self.clock is not None:
            ctx.clock = self.clock
        use_cache = str(cfg.watch_cache).lower()
        if use_cache in ("true", "1", "yes") or (use_cache == "auto" and cfg.store_config.get("backend") == "etcd"):
            from clusterctl.api.watch_cache import WatchCache
            ctx.watch_cache = WatchCache(store)
        self.ctx = ctx
        app, self.routes = make_app(ctx)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.bind_address, cfg.port, ssl_context=self.ssl_context(), reuse_address=True,
                           backlog=1024)
        try:
            await site.start()
        except OSError as exc:   # the port is taken, the address is not this host's, ...
            raise ListenError(f"the API server cannot listen on {cfg.bind_address}:{cfg.port}: "
                              f"{exc.strerror or exc}") from exc
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else cfg.port
        await bootstrap(ctx, server_port=self.port)
        from clusterctl.api.lifecycle import resume_namespace_terminations, resume_pending_deletions
        await resume_pending_deletions(ctx)
        await resume_namespace_terminations(ctx)
        ctx.started = True
        for component in self.extra_components:
            self._component_tasks.append(asyncio.create_task(self._run_component(component), name=f"component {component!r}"))

    async def _run_component(self, component: Component) -> None:
        try:
            await component(self.ctx)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failing component must not take the API server down
            log.exception("control-plane component %r failed", component)

    async def stop(self) -> None:
        for task in self._component_tasks:
            task.cancel()
        await asyncio.gather(*self._component_tasks, return_exceptions=True)
        if self.ctx is not None:
            await self.ctx.stop_background()
            if self.ctx.watch_cache is not None:
                await self.ctx.watch_cache.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._store is not None:
            await self._store.close()

