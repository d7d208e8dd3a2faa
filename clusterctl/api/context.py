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
import itertools
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

ENVELOPE = "clusterctl.io/encrypted"
RENDER_CACHE_SIZE = 4096
_META = b'"metadata":{'
_ENVELOPE_BYTES = b'"clusterctl.io/encrypted"'

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
    #: (plural, subresource) -> async handler(ctx, target, request, raw) served by another component
    #: (e.g. the node runtime's pods/log); listed in discovery. Register before clients discover.
    extra_subresources: dict = field(default_factory=dict)
    #: shared per-kind store watches (``clusterctl.api.watch_cache``), or None: one store watch per API watch
    watch_cache: "object | None" = None
    #: the server finished starting (bootstrap objects written, pending deletions resumed): until
    #: then ``/readyz`` answers 503, as Kubernetes' does until its post-start hooks have run
    started: bool = False
    _render_cache: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _background: set[asyncio.Task] = field(default_factory=set)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _now_cache: tuple[int, str] = (-1, "")

    # --- stored item <-> API object ----------------------------------------------------------

    def seal(self, info: KindInfo, key: str, obj: dict) -> dict:
        """What the store gets: top-level keys in canonical order (so ``render`` can splice the
        resourceVersion into serialized bytes), Secrets sealed."""
        if info.kind == "Secret" and not info.group and self.secrets.enabled:
            return self.secrets.seal(key, obj)
        if next(iter(obj), None) != "apiVersion" or "metadata" not in obj or list(obj)[:3] != ["apiVersion", "kind", "metadata"]:
            ordered = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": obj.get("metadata") or {}}
            ordered.update((k, v) for k, v in obj.items() if k not in ordered)
            return ordered
        return obj

    def load(self, item: Item) -> dict:
        """The stored value as an object (decrypted); shared with the store: do not mutate."""
        value = item.value
        if ENVELOPE in value:
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

    def render_value(self, key: str, value: dict | None, revision: int, raw: bytes | None = None) -> bytes:
        """Serialized object with ``resourceVersion``, without copying the stored dict: the
        canonical key order puts the top-level ``"metadata":{`` first, and the version is spliced in.
        ``raw`` (the stored JSON, when the store keeps it) is used as is; ``value`` may then be None."""
        if raw is None:
            if ENVELOPE in value:
                return orjson.dumps(self.with_rv(self.secrets.open(key, value), revision))
            raw = orjson.dumps(value)
        elif _ENVELOPE_BYTES in raw:
            value = orjson.loads(raw)
            if ENVELOPE in value:
                return orjson.dumps(self.with_rv(self.secrets.open(key, value), revision))
        i = raw.find(_META)
        if i < 0 or b"{" in raw[1:i]:
            return orjson.dumps(self.with_rv(orjson.loads(raw) if value is None else value, revision))
        i += len(_META)
        rv = b'"resourceVersion":"%d"' % revision
        return b"".join((raw[:i], rv, b"" if raw[i:i + 1] == b"}" else b",", raw[i:]))

    def render_item(self, item: Item) -> bytes:
        """``render_value`` of a stored item (uncached: for LIST pages)."""
        if item.raw is not None:
            return self.render_value(item.key, None, item.mod_revision, item.raw)
        return self.render_value(item.key, item.value, item.mod_revision)

    def render(self, item: Item) -> bytes:
        if item.raw is not None:
            return self.render_cached(item.key, None, item.mod_revision, item.raw)
        return self.render_cached(item.key, item.value, item.mod_revision)

    def render_cached(self, key: str, value: dict | None, revision: int, raw: bytes | None = None) -> bytes:
        """``render_value`` through a small LRU (watch fan-out serializes each event once)."""
        cache = self._render_cache
        cached = cache.get(key)
        if cached is not None and cached[0] == revision:
            return cached[1]
        data = self.render_value(key, value, revision, raw)
        cache[key] = (revision, data)
        if len(cache) > RENDER_CACHE_SIZE:
            for old in list(itertools.islice(cache, RENDER_CACHE_SIZE // 4)):
                del cache[old]
        return data

    def forget(self, key: str) -> None:
        self._render_cache.pop(key, None)

    def now(self) -> str:
        """The clock as RFC 3339 seconds (formatted once per second)."""
        second = int(self.clock())
        if self._now_cache[0] != second:
            self._now_cache = (second, rfc3339(second))
        return self._now_cache[1]

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
