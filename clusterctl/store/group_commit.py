"""Group commit: one thread appends and fsyncs batches of log records, reported back in order.

The tinydb store acknowledges a write only once its log record is fsync'd, and the event loop
must never block on the disk. A thread pool hand-off per batch (``run_in_executor``) costs a
future, a work item and two thread wake-ups per fsync, and the log sits idle while the loop
gets round to handing over the next batch. Here one long-lived thread owns the log segment:

- the loop ``submit``s framed records (a lock and a list append; the thread is woken only when
  it is idle, once per loop iteration — while an fsync runs, records simply pile up);
- the thread takes everything queued (up to ``max_batch``), writes it, fsyncs once, and goes
  straight on to what arrived meanwhile; each batch's outcome reaches the loop through one
  ``call_soon_threadsafe`` (``on_batch(tokens, error)``), in log order;
- ``call(fn, on_done)`` runs ``fn`` in the thread after every record submitted before it is
  durable (log rotation), and ``on_done`` on the loop at the same place in the order, so the
  caller sees memory exactly as of that point of the log;
- after a failed append the thread *halts*: records queued behind the failed batch were checked
  against it, so the store fails them too (``take_queued``) before it ``resume``s the thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

from clusterctl.store.wal import SegmentWriter, WalFailed

log = logging.getLogger(__name__)

#: on_batch(tokens of the batch, None or the WalFailed that refused it) — called on the loop
BatchCallback = Callable[[list, "WalFailed | None"], None]
#: on_done(result, None) or on_done(None, exception) — called on the loop
CallDone = Callable[[Any, "BaseException | None"], None]


class _Call:
    """A function to run in the log thread, ordered with the records."""

    __slots__ = ("fn", "on_done")

    def __init__(self, fn: Callable[[], Any], on_done: CallDone):
        self.fn = fn
        self.on_done = on_done


class GroupCommitter:
    """The log's one writer thread. See the module docstring."""

    def __init__(self, segment: SegmentWriter, loop: asyncio.AbstractEventLoop, on_batch: BatchCallback, *,
                 max_batch: int = 1024, name: str = "store-wal"):
        self.segment = segment
        self._loop = loop
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._cond = threading.Condition(threading.Lock())
        self._records: list[bytes | None] = []  # None marks a _Call in the same slot of _tokens
        self._tokens: list[Any] = []
        self._idle = False
        self._kick_pending = False
        self._halted = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- the loop's side

    def submit(self, record: bytes, token: Any) -> None:
        """Queue one framed record; ``token`` comes back in ``on_batch`` once it is durable (or failed).

        An idle thread is woken at the end of this loop iteration, not at once: the other requests
        the same poll delivered are queued first and share its fsync (one wake-up, a bigger batch).
        """
        with self._cond:
            self._records.append(record)
            self._tokens.append(token)
            if not self._idle or self._kick_pending:
                return
            self._kick_pending = True
        self._loop.call_soon(self._kick)

    def _kick(self) -> None:
        with self._cond:
            self._kick_pending = False
            if self._idle:
                self._cond.notify()

    def call(self, fn: Callable[[], Any], on_done: CallDone) -> None:
        """Run ``fn`` in the log thread after everything queued so far; ``on_done`` on the loop, in order."""
        with self._cond:
            self._records.append(None)
            self._tokens.append(_Call(fn, on_done))
            if self._idle:
                self._cond.notify()

    def take_queued(self) -> list:
        """While halted: remove and return the tokens not yet taken (queued calls are told ``error``
        by the caller through ``fail_call``)."""
        with self._cond:
            tokens, self._records, self._tokens = self._tokens, [], []
        return tokens

    @staticmethod
    def is_call(token: Any) -> bool:
        return isinstance(token, _Call)

    @staticmethod
    def fail_call(token: _Call, error: BaseException) -> None:
        token.on_done(None, error)

    def resume(self) -> None:
        """Take records again after a failed batch (the caller has failed what was queued)."""
        with self._cond:
            self._halted = False
            self._cond.notify()

    def stop(self) -> None:
        """Finish what is queued, then end the thread (blocks until it has)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    # ----------------------------------------------------------------- the thread

    def _take(self) -> tuple[list[bytes | None], list[Any]] | None:
        with self._cond:
            while True:
                if self._stopping and (self._halted or not self._records):
                    return None  # done (a halted log's queued records were failed by the store)
                if self._records and not self._halted:
                    break
                self._idle = True
                self._cond.wait()
            self._idle = False
            records, tokens = self._records, self._tokens
            if records[0] is None:  # a call runs alone, in its place
                take = 1
            else:
                take = min(len(records), self._max_batch)
                for i in range(1, take):
                    if records[i] is None:
                        take = i
                        break
            if take == len(records):
                self._records, self._tokens = [], []
                return records, tokens
            self._records, self._tokens = records[take:], tokens[take:]
            return records[:take], tokens[:take]

    def _run(self) -> None:
        loop = self._loop
        while True:
            taken = self._take()
            if taken is None:
                return
            records, tokens = taken
            if records[0] is None:
                call = tokens[0]
                try:
                    result, error = call.fn(), None
                except BaseException as exc:  # reported to the caller on the loop
                    result, error = None, exc
                self._post(call.on_done, result, error)
                continue
            error: WalFailed | None = None
            try:
                self.segment.append(b"".join(records), len(records))
            except WalFailed as exc:
                error = exc
            except Exception as exc:  # a bug or an unexpected OS error: the log takes no more appends
                log.exception("write-ahead log %s: unexpected append failure", self.segment.path)
                error = WalFailed(f"log append failed: {exc!r}", broken=True)
            if error is not None:
                with self._cond:
                    self._halted = True
            self._post(self._on_batch, tokens, error)

    def _post(self, callback: Callable, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("write-ahead log: loop closed before a batch could be reported")
