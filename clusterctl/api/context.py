"""``ApiContext``: the API server's shared state, and how stored items become API objects.

One context per server process: the store, the kinds registry, the config, the authenticator,
the secrets codec, an injectable clock, and the hooks other components plug into
(``extra_components``: coroutines started with the server, e.g. scheduler and controllers, each
called as ``await component(ctx)`` and cancelled on shutdown).

Stored values never carry ``resourceVersion`` (the store's ``mod_revision`` is the truth); every
object leaving the server gets it added here. ``render()`` caches each object's serialized bytes
by (key, revision) so LIST and watch fan-out serialize an object once, not once per reader.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import orjson

from clusterctl.api.auth import Authenticator
from clusterctl.api.config import ControlPlaneConfig, Timings
from clusterctl.api.kinds import KindInfo, Registry
from clusterctl.api.secrets_at_rest import SecretCodec
from clusterctl.store.base import Item, Store

log = logging.getLogger("clusterctl.api")

Component = Callable[["ApiContext"], Awaitable[None]]


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()


@dataclass
class ApiContext:
    store: Store
    registry: Registry
    config: ControlPlaneConfig | None = None
    authenticator: Authenticator | None = None
    secrets: SecretCodec = field(default_factory=lambda: SecretCodec(None))
    clock: Callable[[], float] = time.time
    timings: Timings = field(default_factory=Timings)
    extra_components: list[Component] = field(default_factory=list)
    #: product version for /version's gitVersion
    version: str = "0.1.0"
    #: where clients reach this server and the admin kubeconfig (set once the server listens)
    url: str | None = None
    kubeconfig: "object | None" = None
    _render_cache: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _background: set[asyncio.Task] = field(default_factory=set)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    # --- stored item <-> API object ----------------------------------------------------------

    def seal(self, info: KindInfo, key: str, obj: dict) -> dict:
        if info.kind == "Secret" and not info.group and self.secrets.enabled:
            return self.secrets.seal(key, obj)
        return obj

    def load(self, item: Item) -> dict:
        """The stored value as an object (decrypted); shared with the store: do not mutate."""
        value = item.value
        if "clusterctl.io/encrypted" in value:
            return self.secrets.open(item.key, value)
        return value

    @staticmethod
    def with_rv(obj: dict, revision: int) -> dict:
        """A shallow copy of ``obj`` whose metadata carries ``resourceVersion``."""
        meta = dict(obj.get("metadata") or {})
        meta["resourceVersion"] = str(revision)
        out = dict(obj)
        out["metadata"] = meta
        return out

    def obj(self, item: Item) -> dict:
        return self.with_rv(self.load(item), item.mod_revision)

    def render(self, item: Item) -> bytes:
        cached = self._render_cache.get(item.key)
        if cached is not None and cached[0] == item.mod_revision:
            return cached[1]
        data = orjson.dumps(self.obj(item))
        self._render_cache[item.key] = (item.mod_revision, data)
        return data

    def forget(self, key: str) -> None:
        self._render_cache.pop(key, None)

    def now(self) -> str:
        return rfc3339(self.clock())

    def lock(self, name: str) -> asyncio.Lock:
        lk = self.locks.get(name)
        if lk is None:
            lk = self.locks[name] = asyncio.Lock()
        return lk

    # --- background work ---------------------------------------------------------------------

    def spawn(self, coro: Awaitable, name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def stop_background(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
