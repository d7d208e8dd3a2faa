"""``Session``: one verb's connection to the cluster, resolved the way kubectl resolves it.

``--kubeconfig`` beats ``$KUBECONFIG`` beats ``~/.kube/config`` (``client.kubeconfig`` does the
merging); ``-n`` beats the context's namespace beats ``default``; ``-A`` lists across namespaces.
The few requests the client library has no method for (a ``Table`` GET with kubectl's Accept
header, a server-side dry-run PATCH) are sent through the client's own session and
credentials here, so TLS, the token and error mapping stay the library's.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson

from clusterctl.client.rest import ApiClient, _clean_params, _error_from_response

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Session:
    """An ``ApiClient`` plus the namespace rules of one command line."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client = ApiClient.from_kubeconfig(getattr(args, "kubeconfig", None), context=getattr(args, "context", None),
                                                retries=2, user_agent="clusterctl-kubectl")
        self.all_namespaces = bool(getattr(args, "all_namespaces", False))
        self.namespace: str = getattr(args, "namespace", None) or self.client.namespace or "default"
        self.explicit_namespace = bool(getattr(args, "namespace", None))

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    def list_namespace(self) -> str | None:
        """The namespace a LIST goes to (None = all namespaces with ``-A``)."""
        return None if self.all_namespaces else self.namespace

    async def get_with_accept(self, path: str, accept: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` with a chosen ``Accept`` (server-side Tables)."""
        url = self.client.server + path
        headers = {**self.client._auth_headers(), "Accept": accept}
        async with self.client._get_session().get(url, params=_clean_params(params), headers=headers,
                                                  timeout=aiohttp.ClientTimeout(total=self.client.request_timeout)) as resp:
            payload = await resp.read()
            if resp.status >= 400:
                raise _error_from_response(resp.status, resp.reason or "", payload, "GET", path)
            return orjson.loads(payload) if payload else {}

    async def watch_lines(self, path: str, accept: str, params: dict[str, Any] | None = None):
        """Stream a watch (``watch=true``) with a chosen ``Accept``; yields decoded events."""
        url = self.client.server + path
        headers = {**self.client._auth_headers(), "Accept": accept}
        query = _clean_params({**(params or {}), "watch": "true"})
        async with self.client._get_session().get(url, params=query, headers=headers,
                                                  timeout=aiohttp.ClientTimeout(total=None)) as resp:
            if resp.status >= 400:
                raise _error_from_response(resp.status, resp.reason or "", await resp.read(), "GET", path)
            async for line in resp.content:
                if line.strip():
                    yield orjson.loads(line)


async def retry_on_conflict(attempt, *, tries: int = 5, delay: float = 0.05):
    """Run ``await attempt()`` again after a 409 Conflict (a controller wrote the object in
    between), up to ``tries`` times — what kubectl's patchers do."""
    import asyncio

    from clusterctl.client.errors import Conflict
    for i in range(tries):
        try:
            return await attempt()
        except Conflict:
            if i == tries - 1:
                raise
            await asyncio.sleep(delay * (2 ** i))
