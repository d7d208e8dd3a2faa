"""The ``etcd`` backend: the same store contract on etcd v3, spoken to over its JSON gateway.

For HA: several API servers can share one etcd cluster, because every guarantee comes from etcd
itself. Mapping (kine and the Kubernetes apiserver do the same):

- revision = etcd's header revision (``mod_revision`` of a key = its ``resourceVersion``);
- create = txn(compare ``create_revision == 0`` -> put, else range) -> ``KeyExists``;
- update = txn(compare ``mod_revision == expected`` (or the key exists) -> put + keys-only range
  (for ``create_revision``), else range to report the current item) -> ``RevisionConflict``/``KeyNotFound``;
- delete = the same compare -> delete with ``prev_kv`` (the deleted value), else range;
- list = range over ``[prefix, prefix_end)`` with ``limit`` and, for consistent paging, ``revision``;
- watch = a streaming ``/v3/watch`` from ``start_revision = after + 1`` with ``prev_kv`` (DELETE
  events carry the last value); etcd's "compacted" cancel becomes ``Compacted``.

etcd 3.4's gateway serves ``/v3/`` (``/v3beta/`` is the deprecated alias), keys and values are
base64, int64 fields are JSON strings and default values (false, 0, PUT) are left out. Each
watch is its own HTTP stream read at the consumer's pace: TCP back-pressure and etcd's own slow
watcher handling keep one slow consumer from stalling writers or other watchers. Several
endpoints may be given; a connection failure moves on to the next one.

Why it is shaped for throughput: every gateway request costs etcd ~0.4 ms of CPU whatever it
carries (JSON <-> protobuf, an internal gRPC hop), and etcd only batches what is in flight at
once. So requests are never serialised here (a pool of keep-alive connections, no lock; each
write is exactly one compare-and-set txn, no read before it), and reads that arrive while other
reads are in flight are merged (``_ReadBatcher``) into one read-only txn — several ranges at one
revision, identical ones sent once. A read joins only a request sent after it was asked for, so
merged reads stay linearizable. Values stay the JSON bytes etcd sent (``Item.raw``): the API
server splices them into its answers, so a LIST or watch event is never decoded here.

Transport: ``https`` endpoints are verified against ``ca_file`` (etcd's own CA) and this client
presents ``cert_file``/``key_file`` (etcd runs with ``--client-cert-auth``; ``etcd_tls`` makes
them); plain ``http`` is refused unless the endpoint is on loopback.

Errors: etcd is asked to fail fast when its member has no leader (``hasleader`` gRPC metadata),
and "unavailable" answers (no leader, leader changed, request timed out, too many requests, a
member down) are retried with capped exponential backoff for ``retry_budget`` seconds; then
``StoreUnavailable`` (for the API to answer 503 + Retry-After). Reads retry freely. A write that
surely did not apply ("no leader", refused connection) retries as is; one whose outcome is
unknown (a timeout, a lost answer) also retries — its compare-and-set makes a second apply
impossible — and when that retry's compare fails, the key is checked for the value this write
put there: found, the write is reported as done; otherwise as the conflict it is.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
import random
import time
from typing import AsyncIterator, Awaitable, Callable

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
    StoreUnavailable,
)
from clusterctl.store.etcd_http import GatewayAnswerLost, GatewayClient, GatewayConnectError
from clusterctl.store.etcd_tls import EtcdTLSError, client_ssl_context, insecure_endpoint_problem
from clusterctl.store.fanout import Subscriber, deliver

API_PREFIX = "/v3"
#: etcd's default ``--max-txn-ops``: the most ranges one merged read may carry
MAX_TXN_OPS = 128
#: a list without a limit joins a merged read as a range of at most this many keys; a longer
#: one (etcd's count says so) is read again on its own, so one big LIST never rides in a merged read
MERGED_LIST_KEYS = 256
#: gRPC metadata (through the gateway's Grpc-Metadata- headers): fail at once with "no leader"
#: instead of waiting for an election the member may not win
_REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
#: etcd answers that mean "not now": retried, then StoreUnavailable
_UNAVAILABLE_STATUSES = frozenset({429, 503, 504})
#: the gateway's own gRPC connection to its member failing (seen as a peer member went away: "OK:
#: HTTP status code 200; transport: missing content-type field"): the request's fate is unknown
_TRANSPORT_MESSAGES = ("transport: ", "transport is closing", "connection is closing", "error reading from server")
_UNAVAILABLE_MESSAGES = ("no leader", "leader changed", "request timed out", "too many requests",
                         "server stopped", "raft: stopped", "not capable", "timed out waiting for read index",
                         *_TRANSPORT_MESSAGES)
#: gRPC's UNAVAILABLE, which the gateway passes on as ``code``
_GRPC_UNAVAILABLE = 14
#: of those, the ones etcd gives before proposing anything: a write that got them did not apply
_NOT_APPLIED_MESSAGES = ("no leader", "too many requests", "not capable")


class _Unavailable(Exception):
    """One attempt failed in a retryable way (internal to ``EtcdStore._call``)."""

    def __init__(self, message: str, *, applied_maybe: bool):
        super().__init__(message)
        self.applied_maybe = applied_maybe


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


_b64decode = base64.b64decode


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's range_end)."""
    trimmed = bytearray(prefix)
    while trimmed:
        if trimmed[-1] < 0xFF:
            trimmed[-1] += 1
            return bytes(trimmed)
        trimmed.pop()
    return b"\x00"  # every key


def _tls_hint(message: str) -> str:
    """A TLS failure (etcd refused our certificate, or we could not verify etcd's) says what to check."""
    if "[SSL" not in message:
        return message
    return (f"{message} — TLS with etcd failed: ca_file must be the etcd CA, and cert_file/key_file a client "
            f"certificate that CA signed")


def _unavailable_reply(status: int, reply: dict) -> tuple[bool, str]:
    """Whether a non-200 gateway reply means "etcd (or this member) is unavailable right now", and
    its message: by HTTP status, by gRPC code 14 (UNAVAILABLE), or by one of etcd's messages."""
    message = str(reply.get("message") or reply.get("error") or reply)
    unavailable = (status in _UNAVAILABLE_STATUSES or reply.get("code") == _GRPC_UNAVAILABLE
                   or any(m in message for m in _UNAVAILABLE_MESSAGES))
    return unavailable, message


class EtcdStore:
    """See the module docstring; ``clusterctl.store.base`` for the contract.

    ``retry_budget`` bounds how long one call keeps retrying an unavailable etcd (backoff from
    ``retry_backoff`` doubling up to ``retry_backoff_max``, with jitter); ``clock``/``sleep`` are
    injectable for tests. ``read_batches`` is how many merged reads may be in flight at once.
    """

    def __init__(self, endpoints: list[str], *, prefix: str = "", timeout: float = 10.0,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 watch_buffer: int = 5_000, watch_replay: int = 1_000, retry_budget: float = 3.0,
                 retry_backoff: float = 0.025, retry_backoff_max: float = 0.5, read_batches: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep):
        if not endpoints:
            raise StoreError("etcd store: no endpoints given")
        for endpoint in endpoints:
            problem = insecure_endpoint_problem(endpoint)
            if problem:
                raise EtcdTLSError(problem)
        if key_file and not cert_file:
            raise EtcdTLSError(f"etcd store: key_file {key_file} given without cert_file")
        self.endpoints = [endpoint.rstrip("/") for endpoint in endpoints]
        self.prefix = prefix
        self._raw_prefix = prefix.encode()
        self.timeout = timeout
        self.watch_buffer = watch_buffer    # per watcher, as in the tinydb backend
        self.watch_replay = watch_replay    # recent events a shared stream keeps for late joiners
        self.retry_budget = retry_budget
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self._clock = clock
        self._sleep = sleep
        self._tls = (ca_file, cert_file, key_file)
        self._endpoint_index = 0
        self._session: aiohttp.ClientSession | None = None   # watch streams
        self._gateway: GatewayClient | None = None           # every other call
        self._revision = 0
        self._closing = False
        self._watch_responses: set[aiohttp.ClientResponse] = set()
        self._hubs: dict[str, _WatchHub] = {}
        self._reads = _ReadBatcher(self, max_in_flight=read_batches)
        #: prefixes whose last unlimited list was too long to ride in a merged read
        self._long_prefixes: set[str] = set()
        #: what went on the wire, for tests and ``status()``: requests sent, reads merged away, retries
        self.stats = {"requests": 0, "merged_reads": 0, "retries": 0}

    # ----------------------------------------------------------------- plumbing

    async def start(self) -> None:
        ssl_context = None
        ca_file, cert_file, key_file = self._tls
        if ca_file or cert_file:
            # one context for every pooled connection and watch stream: connections are kept
            # alive, so a TLS handshake is paid per connection, not per request
            ssl_context = client_ssl_context(ca_file, cert_file, key_file)
        # no limit on connections (here and in the gateway client): every request in flight gets its
        # own keep-alive connection, so etcd sees them all at once and batches them into one fsync
        connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context if ssl_context else True)
        self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",),
                                              headers={**_REQUIRE_LEADER, "Content-Type": "application/json"})
        self._gateway = GatewayClient(ssl_context=ssl_context, headers=_REQUIRE_LEADER)
        self._closing = False
        try:
            await self._call("/kv/range", {"key": _b64(b"\x00"), "count_only": True})
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closing = True
        self._reads.close()
        for hub in list(self._hubs.values()):
            hub.stop()
        for response in list(self._watch_responses):  # session.close() leaves streams hanging
            response.close()
        self._watch_responses.clear()
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None
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
        return _b64decode(raw)[len(self._raw_prefix):].decode()

    def _seen(self, header: dict | None) -> int:
        revision = int((header or {}).get("revision", 0))
        if revision > self._revision:
            self._revision = revision
        return revision

    def _next_endpoint(self) -> None:
        self._endpoint_index = (self._endpoint_index + 1) % len(self.endpoints)

    async def _call(self, path: str, body: dict, *, write: bool = False) -> dict:
        """POST one gateway call, retrying "unavailable" answers within ``retry_budget``.

        For a write (``write=True``) returns only once it surely applied or surely did not;
        a retry after an attempt whose outcome is unknown is flagged in ``reply["_retried_unknown"]``
        so the caller can tell its own earlier apply from someone else's write.
        """
        if self._gateway is None:
            raise StoreError("etcd store is not started")
        data = orjson.dumps(body)
        deadline = self._clock() + self.retry_budget
        backoff = self.retry_backoff
        applied_maybe = False
        attempt = 0
        while True:
            url = self.endpoint + API_PREFIX + path
            try:
                reply = await self._attempt(url, data)
            except _Unavailable as exc:
                applied_maybe = applied_maybe or (write and exc.applied_maybe)
                attempt += 1
                if self._closing or self._clock() >= deadline:
                    tried = ", ".join(self.endpoints)
                    unknown = " (this write may or may not have been applied: re-read before retrying)" \
                        if applied_maybe else ""
                    raise StoreUnavailable(f"etcd unavailable at {tried} after {attempt} attempt(s) in "
                                           f"{self.retry_budget:g} s: {exc}{unknown}",
                                           outcome_unknown=applied_maybe) from exc
                self.stats["retries"] += 1
                if attempt % len(self.endpoints) == 0:  # every endpoint tried once: back off
                    await self._sleep(min(backoff, max(0.0, deadline - self._clock())) * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self.retry_backoff_max)
                continue
            if applied_maybe:
                reply["_retried_unknown"] = True
            return reply

    async def _attempt(self, url: str, data: bytes) -> dict:
        """One POST. Raises ``_Unavailable`` (retryable), the mapped etcd error, or StoreError."""
        assert self._gateway is not None
        self.stats["requests"] += 1
        try:
            status, payload = await self._gateway.post(url, data, timeout=self.timeout)
        except GatewayConnectError as exc:
            self._next_endpoint()  # nothing was sent
            raise _Unavailable(_tls_hint(str(exc)), applied_maybe=False) from exc
        except GatewayAnswerLost as exc:
            self._next_endpoint()  # sent, answer lost
            raise _Unavailable(_tls_hint(f"{url}: {exc}"), applied_maybe=True) from exc
        try:
            with _collector_paused(len(payload) > 1_000_000):
                reply = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError as exc:
            if status in _UNAVAILABLE_STATUSES:
                raise _Unavailable(f"{url} answered {status}: {payload[:200]!r}", applied_maybe=True) from exc
            raise StoreError(f"etcd at {url} answered {status} with non-JSON: {payload[:200]!r}") from exc
        if status != 200:
            unavailable, message = _unavailable_reply(status, reply)
            if unavailable:
                if len(self.endpoints) > 1 and ("no leader" in message or any(m in message for m in _TRANSPORT_MESSAGES)):
                    self._next_endpoint()  # this member is cut off (or its gateway is): another may answer
                raise _Unavailable(f"{url} answered {status}: {message}",
                                   applied_maybe=not any(m in message for m in _NOT_APPLIED_MESSAGES))
            raise self._error(url, status, reply)
        self._seen(reply.get("header"))
        return reply

    @staticmethod
    def _error(url: str, status: int, reply: dict, requested: int = 0) -> StoreError:
        message = reply.get("message") or reply.get("error") or str(reply)
        if "required revision has been compacted" in message:
            return Compacted(requested, 0)
        if "required revision is a future revision" in message:
            return FutureRevision(f"etcd at {url}: {message}")
        return StoreError(f"etcd at {url} answered {status}: {message}")

    def _raw_value(self, kv: dict) -> bytes:
        """A kv's value: the JSON bytes clusterctl wrote (decoded only when a caller reads it)."""
        raw = _b64decode(kv.get("value", ""))
        if raw[:1] != b"{":
            raise StoreError(f"etcd at {self.endpoint}: value of key "
                             f"{_b64decode(kv.get('key', '')).decode(errors='replace')!r} is not a JSON object "
                             f"(written by something other than clusterctl?): {raw[:80]!r}")
        return raw

    def _item(self, kv: dict) -> Item:
        return Item(self._unkey(kv["key"]), None, int(kv.get("mod_revision", 0)),
                    int(kv.get("create_revision", 0)), self._raw_value(kv))

    @staticmethod
    def _encode(key: str, value: dict) -> bytes:
        try:
            return orjson.dumps(value)
        except TypeError as exc:
            raise StoreError(f"value for {key} is not JSON-serialisable: {exc}") from exc

    # ----------------------------------------------------------------- reads

    async def get(self, key: str) -> Item | None:
        response, _ = await self._reads.read({"key": _b64(self._key(key))})
        kvs = response.get("kvs") or []
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
        reply: dict | None = None
        if revision is None and (limit is not None and limit <= MERGED_LIST_KEYS
                                 or limit is None and prefix not in self._long_prefixes):
            merged = dict(body, limit=limit if limit is not None else MERGED_LIST_KEYS)
            response, at = await self._reads.read(merged)
            if limit is not None or not response.get("more"):
                reply = response
            else:
                self._long_prefixes.add(prefix)  # next time straight to a range of its own
        if reply is None:  # a paged list at a revision, or a long one: a range of its own
            try:
                reply = await self._range_at(body, revision)
            except Compacted as exc:
                raise Compacted(revision or 0, exc.compact_revision) from exc
            at = revision if revision is not None else int(reply["header"]["revision"])
            if limit is None and revision is None and int(reply.get("count", 0)) <= MERGED_LIST_KEYS:
                self._long_prefixes.discard(prefix)
        kvs = reply.get("kvs") or []
        with _collector_paused(len(kvs) > 1_000):
            items = [self._item(kv) for kv in kvs]
        return ListResult(items, at, bool(reply.get("more")))

    async def _range_at(self, body: dict, revision: int | None) -> dict:
        """A range of its own; at a given revision it is served by the member at hand
        (``serializable``: that revision's state is immutable, no round of the leader needed),
        falling back to a linearizable read when this member has not applied it yet."""
        if revision is None:
            return await self._call("/kv/range", body)
        try:
            return await self._call("/kv/range", dict(body, revision=revision, serializable=True))
        except FutureRevision:
            return await self._call("/kv/range", dict(body, revision=revision))

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

    def _current(self, reply: dict) -> Item | None:
        """The key's item from a failed txn's range (None: the key does not exist)."""
        responses = reply.get("responses") or [{}]
        kvs = (responses[0].get("response_range") or {}).get("kvs") or []
        return self._item(kvs[0]) if kvs else None

    async def create(self, key: str, value: dict) -> Item:
        """Raises KeyExists. Returns the stored item (durable when this returns)."""
        encoded = self._encode(key, value)
        raw = _b64(self._key(key))
        reply = await self._call("/kv/txn", {
            "compare": [{"key": raw, "target": "CREATE", "create_revision": 0, "result": "EQUAL"}],
            "success": [{"request_put": {"key": raw, "value": _b64(encoded)}}],
            "failure": [{"request_range": {"key": raw}}],
        }, write=True)
        if not reply.get("succeeded"):
            current = self._current(reply)
            if reply.get("_retried_unknown") and current is not None and current.raw == encoded:
                return current  # our first attempt applied; its answer was lost
            raise KeyExists(key)
        revision = int(reply["header"]["revision"])
        return Item(key, None, revision, revision, encoded)

    async def update(self, key: str, value: dict, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Durable when this returns."""
        encoded = self._encode(key, value)
        raw = self._key(key)
        reply = await self._call("/kv/txn", {
            "compare": [self._exists_compare(raw, expected_revision)],
            # the keys-only range after the put (same txn: it sees the put) gives create_revision
            # without etcd reading, encoding and sending back the whole previous value (prev_kv)
            "success": [{"request_put": {"key": _b64(raw), "value": _b64(encoded)}},
                        {"request_range": {"key": _b64(raw), "keys_only": True}}],
            "failure": [{"request_range": {"key": _b64(raw)}}],
        }, write=True)
        if not reply.get("succeeded"):
            current = self._current(reply)
            if current is None:
                raise KeyNotFound(key)
            if reply.get("_retried_unknown") and current.raw == encoded and \
                    current.mod_revision > (expected_revision or 0):
                return current  # our first attempt applied; its answer was lost
            raise RevisionConflict(key, expected_revision if expected_revision is not None else 0, current)
        revision = int(reply["header"]["revision"])
        after = ((reply["responses"][1].get("response_range") or {}).get("kvs") or [{}])[0]
        return Item(key, None, revision, int(after.get("create_revision", revision)), encoded)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Returns the deleted item (revision = delete's).

        If etcd lost the answer to a delete and the retry finds the key gone, this is
        ``KeyNotFound``: the key is gone, and which delete removed it cannot be told.
        """
        raw = self._key(key)
        reply = await self._call("/kv/txn", {
            "compare": [self._exists_compare(raw, expected_revision)],
            "success": [{"request_delete_range": {"key": _b64(raw), "prev_kv": True}}],
            "failure": [{"request_range": {"key": _b64(raw)}}],
        }, write=True)
        if not reply.get("succeeded"):
            current = self._current(reply)
            if current is None:
                raise KeyNotFound(key)
            raise RevisionConflict(key, expected_revision if expected_revision is not None else 0, current)
        revision = int(reply["header"]["revision"])
        prev_kvs = (reply["responses"][0].get("response_delete_range") or {}).get("prev_kvs") or []
        if not prev_kvs:  # deleted between compare and delete cannot happen in one txn; be explicit anyway
            raise KeyNotFound(key)
        prev = self._item(prev_kvs[0])
        return Item(key, None, revision, prev.create_revision, prev.raw)

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
        the last revision seen) — also when the etcd member loses its leader, so a watch never
        silently stalls on a member cut off from the cluster; ends normally when the store closes.
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

    async def _open_watch(self, data: bytes, after_revision: int) -> tuple[aiohttp.ClientResponse, str]:
        """POST a watch and check its status, retrying an unavailable etcd like ``_call`` (so a
        client re-watching a member without a leader waits out the budget instead of spinning)."""
        deadline = self._clock() + self.retry_budget
        backoff = self.retry_backoff
        attempt = 0
        while True:
            assert self._session is not None
            url = self.endpoint + API_PREFIX + "/watch"
            try:
                response = await self._session.post(
                    url, data=data, timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=None))
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                problem: str = f"{url} failed: {exc!r}"
                cause: BaseException = exc
            else:
                if response.status == 200:
                    self._watch_responses.add(response)
                    return response, url
                payload = await response.read()
                response.close()
                try:
                    reply = orjson.loads(payload) if payload else {}
                except orjson.JSONDecodeError:
                    reply = {"message": payload[:200].decode(errors="replace")}
                unavailable, message = _unavailable_reply(response.status, reply)
                if not unavailable:
                    raise self._error(url, response.status, reply, after_revision)
                problem, cause = f"{url} answered {response.status}: {message}", StoreError(message)
            self._next_endpoint()
            attempt += 1
            if self._closing or self._clock() >= deadline:
                raise StoreUnavailable(f"etcd watch unavailable after {attempt} attempt(s) in "
                                       f"{self.retry_budget:g} s: {problem}") from cause
            self.stats["retries"] += 1
            if attempt % len(self.endpoints) == 0:
                await self._sleep(min(backoff, max(0.0, deadline - self._clock())) * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.retry_backoff_max)

    async def _stream(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """One etcd watch stream: each message's events as a batch (see ``watch`` for errors)."""
        if self._session is None:
            raise StoreError("etcd store is not started")
        raw_prefix = self._key(prefix)
        body = {"create_request": {"key": _b64(raw_prefix), "range_end": _b64(prefix_end(raw_prefix)),
                                   "start_revision": after_revision + 1, "prev_kv": True}}
        response, url = await self._open_watch(orjson.dumps(body), after_revision)
        try:
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
                    raw_events = result.get("events")
                    if raw_events:
                        yield [self._event(raw_event) for raw_event in raw_events]
            if not self._closing:  # etcd ends the streams of a member that lost its leader
                self._next_endpoint()
                raise StoreError(f"etcd watch stream at {url} ended; re-watch from the last revision seen")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if self._closing:
                return
            self._next_endpoint()
            raise StoreError(f"etcd watch stream at {url} broke: {exc!r}") from exc
        finally:
            self._watch_responses.discard(response)
            response.close()

    def _event(self, raw: dict) -> Event:
        kv = raw["kv"]
        key = self._unkey(kv["key"])
        revision = int(kv["mod_revision"])
        prev_kv = raw.get("prev_kv")
        prev_raw = self._raw_value(prev_kv) if prev_kv and prev_kv.get("value") else None
        if raw.get("type") == "DELETE":
            return Event("DELETE", key, None, revision, raw=prev_raw, prev_raw=prev_raw)
        return Event("PUT", key, None, revision, created=kv.get("create_revision") == kv.get("mod_revision"),
                     raw=self._raw_value(kv), prev_raw=prev_raw)

    def status(self) -> dict:
        return {"backend": "etcd", "endpoints": self.endpoints, "prefix": self.prefix, "revision": self._revision,
                **self.stats}


class _ReadBatcher:
    """Merges reads that wait at the same time into one read-only txn (see the module docstring).

    ``read(range_request)`` answers ``(range_response, revision)``. At most ``max_in_flight``
    merged requests are on the wire; reads arriving meanwhile wait for the next one, so under
    load each request carries many reads, and alone a read goes out at once. Identical ranges
    in one request are sent once. A caller that is cancelled just stops waiting.
    """

    def __init__(self, store: EtcdStore, *, max_in_flight: int):
        self.store = store
        self.max_in_flight = max(1, max_in_flight)
        self.waiting: dict[bytes, tuple[dict, list[asyncio.Future]]] = {}
        self.in_flight: set[object] = set()  # merged-read tasks and reads going out alone

    async def read(self, request: dict) -> tuple[dict, int]:
        if not self.waiting and len(self.in_flight) < self.max_in_flight:
            return await self._read_alone(request)
        future = asyncio.get_running_loop().create_future()
        identity = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
        entry = self.waiting.get(identity)
        if entry is None:
            self.waiting[identity] = (request, [future])
        else:
            entry[1].append(future)
            self.store.stats["merged_reads"] += 1
        self._send_some()
        return await future

    async def _read_alone(self, request: dict) -> tuple[dict, int]:
        """Nothing to merge with: the read goes out from the caller's own task (no task hop);
        reads arriving meanwhile wait for it and then go out merged."""
        slot = object()
        self.in_flight.add(slot)
        try:
            reply = await self.store._call("/kv/range", request)
        except StoreUnavailable as exc:
            self._fail(list(self.waiting.values()), exc)  # the shared verdict, as in _send
            self.waiting.clear()
            raise
        finally:
            self.in_flight.discard(slot)
            if not self.store._closing:
                self._send_some()
        return reply, int(reply["header"]["revision"])

    def _send_some(self) -> None:
        while self.waiting and len(self.in_flight) < self.max_in_flight:
            batch = []
            for identity in list(self.waiting)[:MAX_TXN_OPS]:
                batch.append(self.waiting.pop(identity))
            task = asyncio.create_task(self._send(batch), name="etcd merged read")
            self.in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task) -> None:
        self.in_flight.discard(task)
        if not task.cancelled() and not self.store._closing:
            self._send_some()

    async def _send(self, batch: list[tuple[dict, list[asyncio.Future]]]) -> None:
        store = self.store
        try:
            if len(batch) == 1:
                reply = await store._call("/kv/range", batch[0][0])
                responses = [reply]
            else:
                store.stats["merged_reads"] += len(batch) - 1
                reply = await store._call("/kv/txn", {"success": [{"request_range": r} for r, _ in batch]})
                responses = [r.get("response_range") or {} for r in reply.get("responses") or ()]
                if len(responses) != len(batch):
                    raise StoreError(f"etcd at {store.endpoint} answered {len(responses)} ranges for "
                                     f"{len(batch)} asked")
            revision = int(reply["header"]["revision"])
        except asyncio.CancelledError:
            self._fail(batch, StoreError("etcd store closed while reading"))
            raise
        except Exception as exc:  # every waiter gets the error it would have got alone
            self._fail(batch, exc)
            if isinstance(exc, StoreUnavailable):
                # reads that queued while etcd stayed unavailable for a whole budget share the
                # verdict, instead of each waiting out a budget of its own behind the others
                self._fail(list(self.waiting.values()), exc)
                self.waiting.clear()
            return
        for response, (_, futures) in zip(responses, batch):
            for future in futures:
                if not future.done():
                    future.set_result((response, revision))

    @staticmethod
    def _fail(batch: list[tuple[dict, list[asyncio.Future]]], exc: BaseException) -> None:
        for _, futures in batch:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)

    def close(self) -> None:
        closed = StoreError("etcd store closed")
        self._fail(list(self.waiting.values()), closed)
        self.waiting.clear()
        for task in list(self.in_flight):
            if isinstance(task, asyncio.Task):
                task.cancel()


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
