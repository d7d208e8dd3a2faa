"""The compiled data pump: ``pump/ccl-pump.c`` as one child process of the agent.

The Python pump (``forwarder._Pump``) never copies bytes through Python, but it still runs
Python code for every epoll event (a few microseconds each, holding the GIL it shares with the
agent's event loop); at tens of thousands of requests per second on 2 CPUs that is the part of
the proxy worth cutting. ``ccl-pump`` is the same loop in C (see its header), in a process of its
own rather than a thread in ours: no GIL, a crash costs the open connections and not the agent,
it shows in ``ps``, and a static musl build is ~50 KB and ~0.1 MB resident.

Python keeps everything but the byte moving: accept, connect with retry, balancing, affinity.
``add(client, upstream)`` sends the connected pair over a unix SOCK_SEQPACKET socketpair
(SCM_RIGHTS) and closes our copies at once, so the agent holds no descriptor per connection. A
supervisor thread reads the pump's reports: each connection's end (``open_links``), and the dump
``describe()`` asks for. The supervisor thread also starts the process, because
PR_SET_PDEATHSIG fires when the *thread* that forked the child exits: a pump started from a
short-lived thread would be killed with it.

When the pump dies (a crash, a kill), its connections are cut by the kernel; the supervisor
logs it and the next connection starts a new pump. After ``max_restarts`` deaths within
``restart_window`` seconds it gives up for good and ``PumpUnavailable`` tells the forwarder to use
the Python pump (logged once). ``close()`` (the agent stopping) closes the control socket: the
pump exits on that EOF, taking its connections with it, as the agent's own threads would.

The binary comes from ``node_runtime.native`` (entry ``ccl-pump``): shipped prebuilt by bootstrap,
else compiled here once per source version; none at all → ``compiled_pump()`` is None and the
forwarder uses the Python pump. ``CLUSTERCTL_PUMP_TRANSFER=splice`` makes the pump splice every
read, as the Python pump does, instead of its default ``hybrid`` (see ``copy_in`` in the C source).
"""

from __future__ import annotations

import array
import itertools
import logging
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from node_runtime.errors import NodeRuntimeError
from node_runtime.native import PROGRAMS, SHARED_CACHE, find_or_build

log = logging.getLogger(__name__)

PUMP = PROGRAMS["ccl-pump"]

_RECORD = struct.Struct("=IIQ")         # {u32 type, u32 arg, u64 id}: see ccl-pump.c
_MSG_ADD, _MSG_DUMP = 1, 2              # to the pump
_MSG_END, _MSG_LINES, _MSG_DUMP_END = 1, 2, 3   # from the pump
_END_REFUSED = 2


class PumpUnavailable(NodeRuntimeError):
    """The compiled pump cannot take a connection now (not running and not restartable, or its
    control socket failed): the caller moves this connection's bytes another way."""


class CompiledPump:
    """A running ``ccl-pump`` (started on first use, restarted after a death) and its links."""

    def __init__(self, binary: Path, *, max_restarts: int = 5, restart_window: float = 60.0,
                 send_timeout: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 transfer: str = "hybrid"):
        self.binary = Path(binary)
        self.transfer = transfer
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.send_timeout = send_timeout
        self.clock = clock
        self.links: set[int] = set()        # ids of the connections the pump holds
        self.deaths: list[float] = []
        self.gave_up = False
        self.stats = {"started": 0, "died": 0, "refused": 0, "connections": 0}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._supervisor: threading.Thread | None = None
        self._closing = False
        self._dumps: dict[int, tuple[list[str], threading.Event]] = {}

    # ------------------------------------------------------------------ what the forwarder uses

    @property
    def open_links(self) -> int:
        return len(self.links)

    @property
    def pid(self) -> int | None:
        proc = self._process
        return proc.pid if proc is not None and proc.returncode is None else None

    def add(self, client: socket.socket, upstream: socket.socket) -> None:
        """Hand a connected pair to the pump; our copies are closed. ``PumpUnavailable``: both
        sockets are still the caller's."""
        control = self._ensure_running()
        link_id = next(self._ids)
        self.links.add(link_id)         # before sending: its end may be reported at once
        fds = array.array("i", [client.fileno(), upstream.fileno()])
        try:
            control.sendmsg([_RECORD.pack(_MSG_ADD, 0, link_id)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:          # dead (EPIPE) or hung (timeout): the supervisor deals with the pump
            self.links.discard(link_id)
            raise PumpUnavailable(f"ccl-pump (pid {self.pid}) did not take a connection: {exc}") from exc
        self.stats["connections"] += 1
        client.close()
        upstream.close()

    def describe(self, timeout: float = 5.0) -> list[str]:
        """One line per open connection, from the pump itself (peers, each direction's state)."""
        control = self._control
        if control is None:
            return [f"ccl-pump not running ({self.stats['died']} deaths{', gave up' if self.gave_up else ''})"]
        seq = next(self._ids)
        lines: list[str] = []
        done = threading.Event()
        self._dumps[seq] = (lines, done)
        try:
            control.sendmsg([_RECORD.pack(_MSG_DUMP, 0, seq)])
            if not done.wait(timeout):
                return lines + [f"ccl-pump (pid {self.pid}) did not finish its dump within {timeout:g} s"]
        except OSError as exc:
            return [f"ccl-pump (pid {self.pid}): {exc}"]
        finally:
            self._dumps.pop(seq, None)
        return lines

    def close(self, timeout: float = 10.0) -> None:
        """Stop the pump (it exits on the control socket's EOF) and wait for it."""
        with self._lock:
            self._closing = True
            control, supervisor = self._control, self._supervisor
        if control is not None:
            try:
                control.shutdown(socket.SHUT_RDWR)   # wakes the supervisor's recv and ends the pump
            except OSError:
                pass
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout)

    # ------------------------------------------------------------------ the process

    def _ensure_running(self) -> socket.socket:
        control = self._control
        if control is not None:
            return control
        with self._lock:
            if self._control is not None:
                return self._control
            if self._closing:
                raise PumpUnavailable("ccl-pump is closed")
            if self.gave_up:
                raise PumpUnavailable("ccl-pump gave up after repeated deaths")
            now = self.clock()
            self.deaths = [t for t in self.deaths if now - t < self.restart_window]
            if len(self.deaths) >= self.max_restarts:
                self.gave_up = True
                log.error("ccl-pump died %d times within %g s: the proxy moves bytes with the Python splice "
                          "pump from now on", len(self.deaths), self.restart_window)
                raise PumpUnavailable("ccl-pump gave up after repeated deaths")
            started = threading.Event()
            failure: list[BaseException] = []
            self._supervisor = threading.Thread(target=self._supervise, args=(started, failure), daemon=True,
                                                name="ccl-pump supervisor")
            self._supervisor.start()
            started.wait()
            if failure:
                self.deaths.append(self.clock())
                raise PumpUnavailable(f"ccl-pump {self.binary} did not start: {failure[0]}") from failure[0]
            assert self._control is not None
            return self._control

    def _supervise(self, started: threading.Event, failure: list[BaseException]) -> None:
        """Start the pump (from this long-lived thread: see the module doc), then read its reports
        until it goes."""
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError as exc:
            failure.append(exc)
            started.set()
            return
        try:
            proc = subprocess.Popen([str(self.binary), str(theirs.fileno()), str(os.getpid()),
                                     "--transfer", self.transfer],
                                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            ours.close()
            failure.append(exc)
            log.error("ccl-pump %s did not start: %s", self.binary, exc)
            started.set()
            return
        finally:
            theirs.close()
        ours.settimeout(self.send_timeout)
        self._process, self._control = proc, ours
        self.stats["started"] += 1
        log.info("ccl-pump started (pid %d, %s)", proc.pid, self.binary)
        started.set()
        try:
            self._read_reports(ours)
        finally:
            with self._lock:
                self._control = None
                lost = len(self.links)
                self.links.clear()
                closing = self._closing
            for _, done in list(self._dumps.values()):
                done.set()
            ours.close()
            try:
                status = proc.wait(timeout=10 if closing else 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                status = proc.wait()
            if not closing:
                self.deaths.append(self.clock())
                self.stats["died"] += 1
                log.error("ccl-pump (pid %d) exited with status %s: its %d connections were cut; a new one "
                          "starts with the next connection", proc.pid, status, lost)

    def _read_reports(self, control: socket.socket) -> None:
        while True:
            try:
                data = control.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            kind, arg, ident = _RECORD.unpack_from(data)
            if kind == _MSG_END:
                for off in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
                    _, reason, link_id = _RECORD.unpack_from(data, off)
                    self.links.discard(link_id)
                    if reason == _END_REFUSED:
                        self.stats["refused"] += 1
            elif kind == _MSG_LINES:
                entry = self._dumps.get(ident)
                if entry is not None:
                    entry[0].extend(data[_RECORD.size:].decode(errors="replace").splitlines())
            elif kind == _MSG_DUMP_END:
                entry = self._dumps.get(ident)
                if entry is not None:
                    entry[1].set()


# ---------------------------------------------------------------------- building and sharing it

#: where the agent builds it when no prebuilt one is there (root's, like native's shared cache)
DEFAULT_BUILD_DIR = SHARED_CACHE / "agent"


_SHARED: CompiledPump | None = None
_SHARED_TRIED = False
_SHARED_LOCK = threading.Lock()


def compiled_pump(build_dir: Path | None = None) -> CompiledPump | None:
    """This process's compiled pump (found or built on the first call, which blocks; later calls
    return it at once), or None when there is no binary: then the proxy uses the Python splice
    pump (``native`` logs why, once)."""
    global _SHARED, _SHARED_TRIED
    with _SHARED_LOCK:
        if not _SHARED_TRIED:
            _SHARED_TRIED = True
            binary = find_or_build(PUMP, build_dir or DEFAULT_BUILD_DIR)
            if binary is not None:
                _SHARED = CompiledPump(binary, transfer=os.environ.get("CLUSTERCTL_PUMP_TRANSFER", "hybrid"))
        return _SHARED


def compiled_pump_if_running() -> CompiledPump | None:
    """This process's compiled pump if one was started (never starts or builds one)."""
    return _SHARED


def close_compiled_pump() -> None:
    """Stop this process's compiled pump, if one runs (the agent stopping); a later use starts a new one."""
    global _SHARED, _SHARED_TRIED
    with _SHARED_LOCK:
        pump, _SHARED, _SHARED_TRIED = _SHARED, None, False
    if pump is not None:
        pump.close()
