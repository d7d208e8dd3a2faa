"""The ``etcd`` backend: the same store contract on etcd v3, spoken to over its JSON gateway.

For HA: several API servers can share one etcd cluster, because every guarantee comes from etcd
itself. Mapping (kine and the Kubernetes apiserver do the same):

- revision = etcd's header revision (``mod_revision`` of a key = its ``resourceVersion``);
- create = txn(compare ``create_revision == 0`` -> put, else range) -> ``KeyExists``;
- update/delete = txn(compare ``mod_revision == expected`` (or the key exists) -> put/delete with
  ``prev_kv``, else range to report the current item) -> ``RevisionConflict``/``KeyNotFound``;
- list = range over ``[prefix, prefix_end)`` with ``limit`` and, for consistent paging, ``revision``;
- watch = a streaming ``/v3/watch`` from ``start_revision = after + 1`` with ``prev_kv`` (DELETE
  events carry the last value); etcd's "compacted" cancel becomes ``Compacted``.

etcd 3.4's gateway serves ``/v3/`` (``/v3beta/`` is the deprecated alias), keys and values are
base64, int64 fields are JSON strings and default values (false, 0, PUT) are left out. Each
watch is its own HTTP stream read at the consumer's pace: TCP back-pressure and etcd's own slow
watcher handling keep one slow consumer from stalling writers or other watchers. Several
endpoints may be given; a connection failure moves on to the next one.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
from typing import AsyncIterator

import aiohttp
import orjson

from clusterctl.store.base import (
    Compacted,
    Event,
    FutureRevision,
    Item,
    KeyExists,
    KeyNotFound,
    ListResult,
    RevisionConflict,
    StoreError,
)
from clusterctl.store.fanout import Subscriber, deliver

API_PREFIX = "/v3"


@contextlib.contextmanager
def _collector_paused(pause: bool):
    """Pause the cyclic GC while decoding a big reply: its acyclic objects otherwise trigger
    repeated full passes that nearly double the time a 10k-item list takes. No await inside."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's range_end)."""
    trimmed = bytearray(prefix)
    while trimmed:
        if trimmed[-1] < 0xFF:
            trimmed[-1] += 1
            return bytes(trimmed)
        trimmed.pop()
    return b"\x00"  # every key


class EtcdStore:
    """See the module docstring; ``clusterctl.store.base`` for the contract."""

    def __init__(self, endpoints: list[str], *, prefix: str = "", timeout: float = 10.0,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 watch_buffer: int = 5_000, watch_replay: int = 1_000):
        if not endpoints:
            raise StoreError("etcd store: no endpoints given")
        self.endpoints = [endpoint.rstrip("/") for endpoint in endpoints]
        self.prefix = prefix
        self.timeout = timeout
        self.watch_buffer = watch_buffer    # per watcher, as in the tinydb backend
        self.watch_replay = watch_replay    # recent events a shared stream keeps for late joiners
        self._tls = (ca_file, cert_file, key_file)
        self._endpoint_index = 0
        self._session: aiohttp.ClientSession | None = None
        self._revision = 0
        self._closing = False
        self._watch_responses: set[aiohttp.ClientResponse] = set()
        self._hubs: dict[str, _WatchHub] = {}

    # ----------------------------------------------------------------- plumbing

    async def start(self) -> None:
        ssl_context = None
        ca_file, cert_file, key_file = self._tls
        if ca_file or cert_file:
            import ssl

            ssl_context = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                ssl_context.load_cert_chain(cert_file, key_file)
        connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context if ssl_context else True)
        self._session = aiohttp.ClientSession(connector=connector, json_serialize=lambda o: orjson.dumps(o).decode())
        self._closing = False
        try:
            await self._call("/kv/range", {"key": _b64(b"\x00"), "count_only": True})
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closing = True
        for hub in list(self._hubs.values()):
            hub.stop()
        for response in list(self._watch_responses):  # session.close() leaves streams hanging
            response.close()
        self._watch_responses.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def revision(self) -> int:
        """The newest etcd revision this client has seen."""
        return self._revision

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._endpoint_index]

    def _key(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def _unkey(self, raw: str) -> str:
        return base64.b64decode(raw).decode()[len(self.prefix):]

    def _seen(self, header: dict | None) -> int:
        revision = int((header or {}).get("revision", 0))
        if revision > self._revision:
            self._revision = revision
        return revision

    async def _call(self, path: str, body: dict) -> dict:
        """POST one gateway call; an endpoint that cannot be connected to is skipped for the next."""
        if self._session is None:
            raise StoreError("etcd store is not started")
        last_error: Exception | None = None
        for attempt in range(len(self.endpoints)):
            url = self.endpoint + API_PREFIX + path
            try:
                async with self._session.post(url, json=body,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                    data = await response.read()
                    status = response.status
            except aiohttp.ClientConnectorError as exc:
                # nothing was sent: safe to try the next endpoint
                last_error = exc
                self._endpoint_index = (self._endpoint_index + 1) % len(self.endpoints)
                continue
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                # sent, answer lost: a write may or may not have happened, so no blind retry
                self._endpoint_index = (self._endpoint_index + 1) % len(self.endpoints)
                raise StoreError(f"etcd at {url} did not answer ({exc!r}); the outcome of this request is "
                                 f"unknown (re-read before retrying a write)") from exc
            try:
                with _collector_paused(len(data) > 1_000_000):
                    reply = orjson.loads(data) if data else {}
            except orjson.JSONDecodeError as exc:
                raise StoreError(f"etcd at {url} answered {status} with non-JSON: {data[:200]!r}") from exc
            if status != 200:
                raise self._error(url, status, reply)
            self._seen(reply.get("header"))
            return reply
        raise StoreError(f"etcd unreachable at {', '.join(self.endpoints)}: {last_error!r}") from last_error

    @staticmethod
    def _error(url: str, status: int, reply: dict, requested: int = 0) -> StoreError:
        message = reply.get("message") or reply.get("error") or str(reply)
        if "required revision has been compacted" in message:
            return Compacted(requested, 0)
        if "required revision is a future revision" in message:
            return FutureRevision(f"etcd at {url}: {message}")
        return StoreError(f"etcd at {url} answered {status}: {message}")

    def _decoded(self, kv: dict) -> tuple[dict, bytes]:
        """A kv's value as a dict and as its JSON bytes."""
        try:
            raw = base64.b64decode(kv.get("value", ""))
            return orjson.loads(raw), raw
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise StoreError(f"etcd at {self.endpoint}: value of key "
                             f"{base64.b64decode(kv.get('key', '')).decode(errors='replace')!r} is not JSON "
                             f"(written by something other than clusterctl?): {exc}") from exc

    def _value(self, kv: dict) -> dict:
        return self._decoded(kv)[0]

    def _item(self, kv: dict) -> Item:
        value, raw = self._decoded(kv)
        return Item(self._unkey(kv["key"]), value, int(kv.get("mod_revision", 0)),
                    int(kv.get("create_revision", 0)), raw)

    @staticmethod
    def _encode(key: str, value: dict) -> tuple[dict, bytes]:
        try:
            encoded = orjson.dumps(value)
        except TypeError as exc:
            raise StoreError(f"value for {key} is not JSON-serialisable: {exc}") from exc
        return orjson.loads(encoded), encoded

    # ----------------------------------------------------------------- reads

    async def get(self, key: str) -> Item | None:
        reply = await self._call("/kv/range", {"key": _b64(self._key(key))})
        kvs = reply.get("kvs") or []
        return self._item(kvs[0]) if kvs else None

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None,
                   revision: int | None = None) -> ListResult:
        """Items under ``prefix`` in key order. ``revision`` lists exactly that revision as etcd
        keeps it (``Compacted`` once etcd compacted it, ``FutureRevision`` if it is ahead)."""
        raw_prefix = self._key(prefix)
        start = raw_prefix
        if start_after is not None and self._key(start_after) >= raw_prefix:
            start = self._key(start_after) + b"\x00"
        body: dict = {"key": _b64(start), "range_end": _b64(prefix_end(raw_prefix))}
        if limit is not None:
            body["limit"] = limit
        if revision is not None:
            body["revision"] = revision
        try:
            reply = await self._call("/kv/range", body)
        except Compacted as exc:
            raise Compacted(revision or 0, exc.compact_revision) from exc
        kvs = reply.get("kvs") or []
        with _collector_paused(len(kvs) > 1_000):
            items = [self._item(kv) for kv in kvs]
        at = revision if revision is not None else int(reply["header"]["revision"])
        return ListResult(items, at, bool(reply.get("more")))

    async def count(self, prefix: str) -> int:
        """How many keys are under ``prefix`` (counted by etcd, values not sent)."""
        raw_prefix = self._key(prefix)
        reply = await self._call("/kv/range", {"key": _b64(raw_prefix), "range_end": _b64(prefix_end(raw_prefix)),
                                               "count_only": True})
        return int(reply.get("count", 0))

    # ----------------------------------------------------------------- writes

    def _exists_compare(self, raw: bytes, expected_revision: int | None) -> dict:
        if expected_revision is None:
            return {"key": _b64(raw), "target": "CREATE", "create_revision": 0, "result": "GREATER"}
        return {"key": _b64(raw), "target": "MOD", "mod_revision": expected_revision, "result": "EQUAL"}

    def _failure(self, key: str, reply: dict, expected_revision: int | None) -> StoreError:
        responses = reply.get("responses") or [{}]
        kvs = (responses[0].get("response_range") or {}).get("kvs") or []
        if not kvs:
            return KeyNotFound(key)
        return RevisionConflict(key, expected_revision if expected_revision is not None else 0, self._item(kvs[0]))

    async def create(self, key: str, value: dict) -> Item:
        """Raises KeyExists. Returns the stored item (durable when this returns)."""
        stored, encoded = self._encode(key, value)
        raw = _b64(self._key(key))
        reply = await self._call("/kv/txn", {
            "compare": [{"key": raw, "target": "CREATE", "create_revision": 0, "result": "EQUAL"}],
            "success": [{"request_put": {"key": raw, "value": _b64(encoded)}}],
            "failure": [{"request_range": {"key": raw}}],
        })
        if not reply.get("succeeded"):
            raise KeyExists(key)
        revision = int(reply["header"]["revision"])
        return Item(key, stored, revision, revision, encoded)

    async def update(self, key: str, value: dict, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Durable when this returns."""
        stored, encoded = self._encode(key, value)
        raw = self._key(key)
        reply = await self._call("/kv/txn", {
            "compare": [self._exists_compare(raw, expected_revision)],
            "success": [{"request_put": {"key": _b64(raw), "value": _b64(encoded), "prev_kv": True}}],
            "failure": [{"request_range": {"key": _b64(raw)}}],
        })
        if not reply.get("succeeded"):
            raise self._failure(key, reply, expected_revision)
        revision = int(reply["header"]["revision"])
        prev = (reply["responses"][0].get("response_put") or {}).get("prev_kv") or {}
        return Item(key, stored, revision, int(prev.get("create_revision", revision)), encoded)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Returns the deleted item (revision = delete's)."""
        raw = self._key(key)
        reply = await self._call("/kv/txn", {
            "compare": [self._exists_compare(raw, expected_revision)],
            "success": [{"request_delete_range": {"key": _b64(raw), "prev_kv": True}}],
            "failure": [{"request_range": {"key": _b64(raw)}}],
        })
        if not reply.get("succeeded"):
            raise self._failure(key, reply, expected_revision)
        revision = int(reply["header"]["revision"])
        prev_kvs = (reply["responses"][0].get("response_delete_range") or {}).get("prev_kvs") or []
        if not prev_kvs:  # deleted between compare and delete cannot happen in one txn; be explicit anyway
            raise KeyNotFound(key)
        prev = self._item(prev_kvs[0])
        return Item(key, prev.value, revision, prev.create_revision, prev.raw)

    async def compact(self, revision: int | None = None) -> int:
        """Compact etcd's history up to ``revision`` (default: current). Returns it."""
        if revision is None:
            await self._call("/kv/range", {"key": _b64(b"\x00"), "count_only": True})
            revision = self._revision
        try:
            await self._call("/kv/compaction", {"revision": revision, "physical": True})
        except Compacted:
            pass  # already compacted at or beyond it
        return revision

    # ----------------------------------------------------------------- watches

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """Events under ``prefix`` with revision > ``after_revision``, replayed by etcd then live.

        Watchers of one prefix share one etcd watch stream (a ``_WatchHub``, decoded once and fanned
        out, as the Kubernetes apiserver's watch cache does) when their start is within the hub's
        recent events; an older start gets a stream of its own. Raises ``Compacted`` on first
        iteration when etcd compacted ``after_revision + 1``; ``WatchOverflow`` when the consumer
        falls ``watch_buffer`` events behind; ``StoreError`` if the stream breaks (re-watch from
        the last revision seen); ends normally when the store closes.
        """
        if self._session is None:
            raise StoreError("etcd store is not started")
        hub = self._hubs.get(prefix)
        if hub is None:
            hub = self._hubs[prefix] = _WatchHub(self, prefix, after_revision)
        elif not hub.can_serve(after_revision):
            async for batch in self._stream(prefix, after_revision):
                for event in batch:
                    yield event
            return
        subscriber = hub.subscribe(after_revision)
        try:
            async for event in deliver(subscriber, after_revision):
                yield event
        finally:
            hub.unsubscribe(subscriber)

    async def _stream(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """One etcd watch stream: each message's events as a batch (see ``watch`` for errors)."""
        if self._session is None:
            raise StoreError("etcd store is not started")
        raw_prefix = self._key(prefix)
        body = {"create_request": {"key": _b64(raw_prefix), "range_end": _b64(prefix_end(raw_prefix)),
                                   "start_revision": after_revision + 1, "prev_kv": True}}
        url = self.endpoint + API_PREFIX + "/watch"
        try:
            response = await self._session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=None))
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise StoreError(f"etcd watch at {url} failed: {exc!r}") from exc
        self._watch_responses.add(response)
        try:
            if response.status != 200:
                data = await response.read()
                raise self._error(url, response.status, orjson.loads(data) if data else {}, after_revision)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                if b"\n" not in chunk:
                    continue  # a message larger than one chunk: wait for its end
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    message = orjson.loads(line)
                    result = message.get("result")
                    if result is None:
                        error = message.get("error") or message
                        raise StoreError(f"etcd watch at {url} failed: {error}")
                    self._seen(result.get("header"))
                    if result.get("canceled"):
                        compact_revision = int(result.get("compact_revision", 0))
                        if compact_revision:
                            raise Compacted(after_revision, compact_revision)
                        raise StoreError(f"etcd canceled the watch at {url}: "
                                         f"{result.get('cancel_reason', 'no reason given')}")
                    events = [self._event(raw_event) for raw_event in result.get("events") or ()]
                    if events:
                        yield events
            if not self._closing:
                raise StoreError(f"etcd watch stream at {url} ended; re-watch from the last revision seen")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if self._closing:
                return
            raise StoreError(f"etcd watch stream at {url} broke: {exc!r}") from exc
        finally:
            self._watch_responses.discard(response)
            response.close()

    def _event(self, raw: dict) -> Event:
        kv = raw["kv"]
        key = self._unkey(kv["key"])
        revision = int(kv["mod_revision"])
        prev_kv = raw.get("prev_kv")
        prev_value = self._value(prev_kv) if prev_kv and prev_kv.get("value") else None
        if raw.get("type") == "DELETE":
            return Event("DELETE", key, prev_value if prev_value is not None else {}, revision, prev_value=prev_value)
        value = self._value(kv)
        return Event("PUT", key, value, revision, prev_value=prev_value,
                     created=kv.get("create_revision") == kv.get("mod_revision"))

    def status(self) -> dict:
        return {"backend": "etcd", "endpoints": self.endpoints, "prefix": self.prefix, "revision": self._revision}


class _WatchHub:
    """One etcd watch stream for a prefix, fanned out to every local watcher of that prefix.

    It covers every event after ``after`` and keeps the last ``store.watch_replay`` of them, so a
    watcher starting at or after ``floor`` can join (replay from the kept events, then live).
    It stops when its last watcher leaves; an error ends every watcher with that error.
    """

    def __init__(self, store: EtcdStore, prefix: str, after: int):
        self.store = store
        self.prefix = prefix
        self.floor = after
        self.recent: collections.deque[Event] = collections.deque()
        self.subscribers: set[Subscriber] = set()
        self.failed = False
        self.task = asyncio.create_task(self._run(after), name=f"etcd-watch {prefix}")

    def can_serve(self, after_revision: int) -> bool:
        return not self.failed and after_revision >= self.floor

    def subscribe(self, after_revision: int) -> Subscriber:
        replay = [event for event in self.recent if event.revision > after_revision]
        subscriber = Subscriber(self.prefix, self.store.watch_buffer, after_revision, replay)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers:
            self.stop()

    def stop(self) -> None:
        self.failed = True  # no new joiners
        if self.store._hubs.get(self.prefix) is self:
            del self.store._hubs[self.prefix]
        self.task.cancel()

    async def _run(self, after: int) -> None:
        error: StoreError | None = None
        try:
            async for batch in self.store._stream(self.prefix, after):
                recent = self.recent
                recent.extend(batch)
                while len(recent) > self.store.watch_replay:
                    self.floor = recent.popleft().revision
                for subscriber in [s for s in self.subscribers if not s.offer(batch)]:
                    self.subscribers.discard(subscriber)
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            error = exc
        except Exception as exc:  # a bug or a malformed stream: end the watchers, do not hang them
            error = StoreError(f"etcd watch of {self.prefix} failed: {exc!r}")
        finally:
            self.failed = True
            if self.store._hubs.get(self.prefix) is self:
                del self.store._hubs[self.prefix]
            for subscriber in self.subscribers:
                subscriber.end(error)
