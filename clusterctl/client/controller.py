"""A small controller base: informers feed a work queue of keys; N workers call ``reconcile(key)``.

The shape is sample-controller's: informer handlers only enqueue ``namespace/name`` keys; a
worker takes a key, calls ``await reconcile(key)``, and then
- success → ``forget(key)`` (its backoff resets);
- ``TemporaryError(delay=d)`` → the key comes back after ``d`` seconds (or the per-key
  exponential backoff when ``d`` is None) — the world is expected to change;
- ``Conflict`` (stale resourceVersion) or a connection failure → rate-limited requeue: our cache
  was behind, the next attempt reads newer state;
- ``PermanentError`` → no requeue (retrying cannot fix an invalid spec); subclasses usually
  record an Event saying why;
- anything else → rate-limited requeue and a logged traceback (a bug should not spin hot).
``reconcile`` must be safe to run twice and must never mutate cached objects.

``EventRecorder`` posts core/v1 Events (and bumps ``count`` on repeats, as Kubernetes' event
correlator does) without ever failing the caller.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.errors import ApiConnectionError, ApiError, Conflict, PermanentError, TemporaryError
from clusterctl.client.informer import Informer
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.client.workqueue import QueueShutDown, WorkQueue

log = logging.getLogger(__name__)


class Controller:
    """Subclass and implement ``reconcile``; register informers with ``watch()``."""

    name: str = "controller"

    def __init__(self, client: ApiClient, *, workers: int = 2, queue: WorkQueue[str] | None = None) -> None:
        self.client = client
        self.workers = workers
        self.queue: WorkQueue[str] = queue or WorkQueue(name=self.name)
        self.informers: list[Informer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.reconciles = 0

    async def reconcile(self, key: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- wiring

    def watch(self, informer: Informer, key_of: Callable[[Obj], str | None] = object_key) -> Informer:
        """Enqueue ``key_of(obj)`` on every change of the informer (e.g. the owner's key for children)."""
        if informer not in self.informers:
            self.informers.append(informer)

        def enqueue(obj: Obj) -> None:
            key = key_of(obj)
            if key:
                self.queue.add(key)

        informer.add_handler(on_add=enqueue, on_update=lambda _old, new: enqueue(new), on_delete=enqueue)
        return informer

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        """Start informers nobody started yet (shared ones keep running for their other users),
        wait for them to sync, then run workers until cancelled."""
        try:
            for informer in self.informers:
                if not informer.is_started:
                    self._tasks.append(informer.start())
            await asyncio.gather(*(i.wait_for_sync() for i in self.informers))
            workers = [asyncio.create_task(self._worker(n), name=f"{self.name}:worker:{n}") for n in range(self.workers)]
            self._tasks.extend(workers)
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()

    async def _worker(self, number: int) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """One reconcile of one key with the requeue policy of the module docstring."""
        self.reconciles += 1
        try:
            await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except TemporaryError as exc:
            log.info("%s: %s: will retry: %s", self.name, key, exc)
            if exc.delay is None:
                self.queue.add_rate_limited(key)
            else:
                self.queue.add_after(key, exc.delay)
        except PermanentError as exc:
            # Retrying cannot help: drop the key until its object changes again.
            log.warning("%s: %s: %s", self.name, key, exc)
            self.queue.forget(key)
        except (Conflict, ApiConnectionError) as exc:
            log.debug("%s: %s: %s; requeued", self.name, key, exc)
            self.queue.add_rate_limited(key)
        except ApiError as exc:
            log.warning("%s: %s: %s; requeued", self.name, key, exc)
            self.queue.add_rate_limited(key)
        except Exception:
            log.exception("%s: reconcile %s crashed; requeued with backoff", self.name, key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)


class EventRecorder:
    """Post core/v1 Events about objects; repeats of (object, reason, message) bump ``count``.

    ``emit`` is the hot-path entry: it only appends a compact reference (the involved object's
    identity, not the object) to a bounded queue that ``writers`` background tasks drain, as
    Kubernetes' event broadcaster does. A full queue drops the event and counts it in
    ``dropped`` — events are best effort and must never slow or block the emitting component
    (the scheduler emits one per binding, so a burst of 10,000 pods queues 10,000 events that
    the writers post behind the bindings, a few at a time). ``record`` posts one at once.
    """

    def __init__(self, client: ApiClient, *, component: str, host: str | None = None, clock: Callable[[], float] = time.time,
                 queue_size: int = 1000, writers: int = 4) -> None:
        self.client = client
        self.component = component
        self.host = host or os.uname().nodename
        self._clock = clock
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int]] = {}
        self._queue_size = queue_size
        self._writers = writers
        self._pending: asyncio.Queue[tuple[Obj, str, str, str]] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.dropped = 0
        self.recorded = 0

    def emit(self, obj: Obj, type: str, reason: str, message: str) -> None:
        """Record in the background (see the class docstring); never blocks, never raises."""
        if self._pending is None:
            self._pending = asyncio.Queue(self._queue_size)
            self._tasks = [asyncio.create_task(self._drain(), name=f"events:{self.component}") for _ in range(self._writers)]
        if self._pending.full():
            self.dropped += 1
            return
        self._pending.put_nowait((involved_object(obj), type, reason, message))

    @property
    def queued(self) -> int:
        """Events waiting for a writer."""
        return self._pending.qsize() if self._pending is not None else 0

    async def _drain(self) -> None:
        assert self._pending is not None
        while True:
            involved, type, reason, message = await self._pending.get()
            await self._post(involved, type, reason, message)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._pending = None

    async def record(self, obj: Obj, type: str, reason: str, message: str) -> Obj | None:
        """Record an Event (``type`` Normal|Warning); never raises — events are best effort."""
        return await self._post(involved_object(obj), type, reason, message)

    async def _post(self, involved: Obj, type: str, reason: str, message: str) -> Obj | None:
        namespace = involved.get("namespace") or "default"
        now = _rfc3339(self._clock())
        key = (str(involved.get("uid") or f"{namespace}/{involved.get('name')}"), reason, message, type)
        seen = self._seen.get(key)
        try:
            if seen is not None:
                name, ns, count = seen
                patched = await self.client.patch("events", name, {"count": count + 1, "lastTimestamp": now}, namespace=ns)
                self._seen[key] = (name, ns, count + 1)
                self.recorded += 1
                return patched
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{involved.get('name')}.{time.time_ns():x}", "namespace": namespace},
                "involvedObject": involved,
                "reason": reason, "message": message, "type": type,
                "source": {"component": self.component, "host": self.host},
                "reportingComponent": self.component, "reportingInstance": self.host,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            }
            created = await self.client.create(event, namespace=namespace)
            self._seen[key] = (created["metadata"]["name"], namespace, 1)
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
            self.recorded += 1
            return created
        except (ApiError, ApiConnectionError) as exc:
            self._seen.pop(key, None)
            log.warning("event %s %s on %s/%s not recorded: %s", type, reason, namespace, involved.get("name"), exc)
            return None


def involved_object(obj: Obj) -> Obj:
    """An Event's ``involvedObject``: who the event is about (identity only, not the object)."""
    meta = obj.get("metadata") or {}
    involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                "namespace": meta.get("namespace"), "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    return {k: v for k, v in involved.items() if v is not None}


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
