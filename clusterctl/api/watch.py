"""``?watch=1``: a chunked stream of JSON lines ``{"type": ..., "object": ...}``, as Kubernetes sends.

Start points follow Kubernetes: no ``resourceVersion`` (or ``"0"``, or ``sendInitialEvents=true``)
sends the current state as synthetic ADDED events first; ``resourceVersion=R`` replays history after
R. A revision older than the retained history answers one ERROR event carrying a 410 ``Expired``
Status (what client-go and the Python client expect), then ends. Label/field selectors apply to
transitions: an object that stops matching is DELETED for this watcher, one that starts matching
is ADDED. ``allowWatchBookmarks`` adds BOOKMARK events every ``timings.bookmark_interval``
carrying the newest revision this watcher is complete up to: the store's revision when the store
stream reports every event up to it delivered (``WatchStream.progress()``, tinydb), else the last
revision sent — a resume from a bookmark never skips an event.

Each watch has a pump task reading the store's watch into a bounded queue; a client too slow to
drain it fills the queue, the store ends that one watch (it re-watches from its last revision),
and nobody else waits: writers and other watchers never block on a slow reader.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from clusterctl.api import errors
from clusterctl.api.context import ApiContext
from clusterctl.api.kinds import KindInfo
from clusterctl.api.rest import Target, matches, selectors, to_table, wants_table
from clusterctl.api.selectors import FieldRequirement, FieldSelector, field_value
from clusterctl.store.base import Compacted, Event, WatchOverflow
from clusterctl.store.fanout import Trigger

log = logging.getLogger("clusterctl.api.watch")

QUEUE_LIMIT = 1000
WRITE_BATCH = 256  # events per write at most when a burst is queued
_END = object()


def _int_param(params, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid value for {name}: {raw!r}") from exc


class _Stream:
    def __init__(self, ctx: ApiContext, info: KindInfo, request: web.Request, resp: web.StreamResponse):
        self.ctx, self.info, self.request, self.resp = ctx, info, request, resp
        self.table = wants_table(request)
        self.params = request.query
        self.headers_sent = False

    def object_bytes(self, key: str, value: dict | None, revision: int, raw: bytes | None) -> bytes:
        return self.ctx.render_cached(key, value, revision, raw)

    async def send(self, etype: str, key: str, value: dict | None, revision: int, raw: bytes | None = None) -> None:
        """One event line; ``value`` may be None when ``raw`` (the stored JSON) is given."""
        await self.resp.write(self.line(etype, key, value, revision, raw))

    def line(self, etype: str, key: str, value: dict | None, revision: int, raw: bytes | None = None) -> bytes:
        """The bytes of one event line (``send`` without the write)."""
        if self.table:
            if value is None:
                value = orjson.loads(raw)
            obj = self.ctx.with_rv(self.ctx.secrets.open(key, value) if "clusterctl.io/encrypted" in value else value,
                                   revision)
            table = to_table(self.info, [obj], self.params, no_headers=self.headers_sent, now=self.ctx.clock())
            self.headers_sent = True
            line = orjson.dumps({"type": etype, "object": table}) + b"\n"
        else:
            line = b'{"type":"' + etype.encode() + b'","object":' + self.object_bytes(key, value, revision, raw) + b"}\n"
        return line

    async def send_raw(self, etype: str, obj: dict) -> None:
        await self.resp.write(orjson.dumps({"type": etype, "object": obj}) + b"\n")

    async def bookmark(self, revision: int, *, initial_end: bool = False) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        await self.send_raw("BOOKMARK", {"kind": self.info.kind, "apiVersion": self.info.api_version, "metadata": meta})


def _decoded(ctx: ApiContext, key: str, value: dict | None) -> dict | None:
    if value is None:
        return None
    if "clusterctl.io/encrypted" in value:
        return ctx.secrets.open(key, value)
    return value


async def handle_watch(ctx: ApiContext, t: Target, request: web.Request) -> web.StreamResponse:
    info = t.info
    params = request.query
    labels, fields = selectors(info, params)
    if t.name:
        fields = FieldSelector(fields.requirements + (FieldRequirement("metadata.name", ("metadata", "name"), False, t.name),))
    rv_text = params.get("resourceVersion") or ""
    send_initial = params.get("sendInitialEvents") == "true"
    if rv_text not in ("", "0"):
        try:
            after = int(rv_text)
        except ValueError as exc:
            raise errors.bad_request(f"invalid resource version: {rv_text!r}") from exc
    else:
        after = None
    timeout = _int_param(params, "timeoutSeconds")
    max_seconds = float(timeout) if timeout is not None and timeout > 0 else ctx.timings.watch_max_seconds
    bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
    prefix = info.prefix(t.namespace)
    filtering = not (labels.empty and fields.empty)

    if wants_table(request) and (params.get("includeObject") or "Metadata") not in ("Metadata", "Object", "None"):
        raise errors.bad_request(f'includeObject: Unsupported value: "{params.get("includeObject")}": '
                                 'supported values: "Metadata", "None", "Object"')
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    stream = _Stream(ctx, info, request, resp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    last_rv = after or 0
    try:
        if after is None or send_initial:
            result = await ctx.store.list(prefix)
            for item in result.items:
                if not filtering or matches(ctx.load(item), labels, fields):
                    if item.raw is not None:
                        await stream.send("ADDED", item.key, None, item.mod_revision, item.raw)
                    else:
                        await stream.send("ADDED", item.key, item.value, item.mod_revision)
            last_rv = result.revision
            if send_initial and bookmarks:
                await stream.bookmark(last_rv, initial_end=True)
        await _follow(ctx, stream, prefix, last_rv, labels, fields, filtering, bookmarks, deadline,
                      kind_prefix=info.prefix(), trigger=watch_trigger(ctx, info, fields))
    except ConnectionError:
        return resp  # the client went away; its watch simply ends
    try:
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    return resp


#: field selectors worth indexing watchers by, most selective first (a node agent's pods, one object)
_INDEXED_FIELDS = ("spec.nodeName", "metadata.name", "involvedObject.name")


def watch_trigger(ctx: ApiContext, info: KindInfo, fields: FieldSelector) -> Trigger | None:
    """An index for a field-selector watch (``spec.nodeName=X``: a node agent's pods), so the store
    offers each event only to the watchers indexed under its values, instead of every watcher
    matching every event (1,000 node agents = 1,000 matches per pod write); the shared watch
    cache (etcd) indexes the same way. None when neither can index or the selector has no exact
    term on an indexed field. Secrets are sealed in
    the store (their fields cannot be read there): never indexed."""
    if fields.empty or (ctx.watch_cache is None and not getattr(ctx.store, "watch_triggers", False)):
        return None
    if info.kind == "Secret" and not info.group:
        return None
    exact = {r.field: r for r in fields.requirements if not r.negate}
    for name in _INDEXED_FIELDS:
        requirement = exact.get(name)
        if requirement is None:
            continue
        if name == "metadata.name":  # the key's last segment: nothing to decode
            return Trigger(info.prefix(), name, _name_of_key, requirement.value, by_key=True)
        path = requirement.path
        return Trigger(info.prefix(), name, lambda key, value, _path=path: field_value(value, _path),
                       requirement.value)
    return None


def _name_of_key(key: str, value: dict | None) -> str:
    return key[key.rfind("/") + 1:]


async def _follow(ctx: ApiContext, stream: _Stream, prefix: str, after: int, labels, fields, filtering: bool,
                  bookmarks: bool, deadline: float, kind_prefix: str | None = None,
                  trigger: Trigger | None = None) -> None:
    queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
    if ctx.watch_cache is not None and kind_prefix is not None:
        gen = ctx.watch_cache.watch(kind_prefix, prefix, after_revision=after, trigger=trigger)
    elif trigger is not None:
        gen = ctx.store.watch(prefix, after_revision=after, trigger=trigger)
    else:
        gen = ctx.store.watch(prefix, after_revision=after)

    async def pump() -> None:
        try:
            async for event in gen:
                await queue.put(event)
            await queue.put(_END)
        except Compacted as exc:
            await queue.put(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the watcher as an ERROR event
            log.exception("watch on %s failed", prefix)
            await queue.put(exc)
        finally:
            await gen.aclose()

    pump_task = asyncio.create_task(pump(), name=f"watch-pump {prefix}")
    loop = asyncio.get_running_loop()
    last_rv = after
    interval = ctx.timings.bookmark_interval
    next_bookmark = loop.time() + interval
    try:
        while True:
            now = loop.time()
            if now >= deadline:
                return
            if queue.empty():
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=wait)
                except asyncio.TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        await stream.bookmark(_bookmark_revision(gen, queue, last_rv))
                        next_bookmark = loop.time() + interval
                    continue
            else:
                item = queue.get_nowait()
            # Everything already queued goes out as one write: one chunk, one TLS record and one
            # send for a burst (a group commit's worth of events), not one per event.
            lines: list[bytes] = []
            while True:
                if item is _END or isinstance(item, Exception):
                    if lines:
                        await stream.resp.write(b"".join(lines))
                    await _end_of_stream(stream, item)
                    return
                event: Event = item
                last_rv = event.revision
                etype = _event_type(ctx, event, labels, fields, filtering)
                if etype is not None:
                    lines.append(stream.line(etype, event.key, None if event.raw is not None else event.value,
                                             event.revision, event.raw))
                if queue.empty() or len(lines) >= WRITE_BATCH:
                    break
                item = queue.get_nowait()
            if lines:
                await stream.resp.write(b"".join(lines))
    finally:
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)


async def _end_of_stream(stream: _Stream, item: object) -> None:
    """What ends a watch: the store watch ended (``_END``), fell behind (the client re-watches
    from the last revision it was sent), or failed (one ERROR event)."""
    if item is _END or isinstance(item, WatchOverflow):
        return
    if isinstance(item, Compacted):
        status = errors.gone(f"too old resource version: {item.requested} ({item.compact_revision})").status()
        await stream.send_raw("ERROR", status)
        return
    await stream.send_raw("ERROR", errors.internal(str(item)).status())


def _bookmark_revision(gen, queue: asyncio.Queue, last_rv: int) -> int:
    """The newest revision this watcher is complete up to: the store stream's progress when
    nothing is waiting between it and the client (an empty queue means the pump holds nothing:
    everything the stream yielded was sent), else the last revision sent."""
    progress = getattr(gen, "progress", None)
    if progress is None or not queue.empty():
        return last_rv
    reached = progress()
    return last_rv if reached is None else max(last_rv, reached)


def _event_type(ctx: ApiContext, event: Event, labels, fields, filtering: bool) -> str | None:
    if event.type == "DELETE":
        if filtering and not matches(_decoded(ctx, event.key, event.value), labels, fields):
            return None
        return "DELETED"
    if not filtering:
        return "ADDED" if event.created else "MODIFIED"
    now = matches(_decoded(ctx, event.key, event.value), labels, fields)
    if event.created:
        return "ADDED" if now else None
    before = event.prev_value is not None and matches(_decoded(ctx, event.key, event.prev_value), labels, fields)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None
