"""Forwarding one frontend's TCP connections to its backends.

A ``Forwarder`` owns the listening sockets of one frontend and a ``Balancer`` (round-robin over
the current backends, optional ClientIP affinity). For each accepted client it connects to a
backend with a short connect timeout and, when that backend refuses, is unreachable or does not
answer in time, tries the next one (a vanished pod IP would otherwise hang on ARP for seconds).
With no backend left the client is reset at once.

Then the bytes move, by mode (see ``Forwarder``): by default in C, in the agent's ``ccl-pump``
child process (``compiled_pump.CompiledPump``, mode ``cpump``); or by one shared Python pump
thread that splices every connection's bytes through a pipe under one epoll (``_Pump``, mode
``splice``, also cpump's fallback when it has no binary or keeps dying); or two blocking splice
threads per connection; or asyncio protocols writing into the peer transport. Replacing the backend list only affects new connections; open ones run until either
side closes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from node_runtime.proxy.compiled_pump import PumpUnavailable, compiled_pump
from node_runtime.proxy.table import Backend

log = logging.getLogger(__name__)


#: how a Forwarder moves bytes (see its docstring)
MODES = ("cpump", "splice", "threads", "asyncio")
#: the compiled pump: ~20% less proxy CPU per request than the Python pump (docs/benchmarks.md,
#: "Session 3: compiled pump"); it falls back to the Python pump by itself when there is no binary
DEFAULT_MODE = "cpump"


class Balancer:
    def __init__(self, backends: list[Backend], *, affinity_timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.backends = list(backends)
        self.affinity_timeout = affinity_timeout
        self.clock = clock
        self._rr = itertools.count()
        self._affinity: dict[str, tuple[Backend, float]] = {}

    def update(self, backends: list[Backend], affinity_timeout: float | None) -> None:
        self.backends = list(backends)
        self.affinity_timeout = affinity_timeout
        live = set(self.backends)
        self._affinity = {c: v for c, v in self._affinity.items() if v[0] in live}

    def candidates(self, client_ip: str) -> list[Backend]:
        """Backends to try in order: the sticky one first (ClientIP), then round-robin."""
        if not self.backends:
            return []
        start = next(self._rr) % len(self.backends)
        order = self.backends[start:] + self.backends[:start]
        if self.affinity_timeout is not None:
            sticky = self._affinity.get(client_ip)
            if sticky and sticky[1] > self.clock() and sticky[0] in order:
                order.remove(sticky[0])
                order.insert(0, sticky[0])
        return order

    def chosen(self, client_ip: str, backend: Backend) -> None:
        if self.affinity_timeout is not None:
            self._affinity[client_ip] = (backend, self.clock() + self.affinity_timeout)


class _Half(asyncio.Protocol):
    """One side of a proxied connection; writes what it reads into its peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.pending: list[bytes] = []
        self.eof = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is not None and peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True     # keep our write side open: the other direction may still be flowing

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.close()

    def join(self, peer: _Half) -> None:
        """Link two halves and flush what arrived before the link existed."""
        self.peer, peer.peer = peer, self
        for side in (self, peer):
            if side.pending and side.peer and side.peer.transport:
                for chunk in side.pending:
                    side.peer.transport.write(chunk)
                side.pending.clear()
            if side.eof and side.peer and side.peer.transport and side.peer.transport.can_write_eof():
                side.peer.transport.write_eof()


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class Forwarder:
    """The listeners and the balancer of one frontend.

    The event loop only accepts and connects (with timeout and retry); then, by ``mode``:
    ``"cpump"`` (default): the bytes of every connection move in the agent's ``ccl-pump`` child
    process, one epoll loop in C (no Python per event, no GIL; see compiled_pump.py), or in
    ``"splice"``'s pump when there is no binary or it keeps dying; ``"splice"``: one shared pump
    thread moves them with non-blocking ``os.splice`` through a pipe under one level-triggered
    epoll — the bytes never enter Python, but every event runs Python (``_Pump``); ``"threads"``: two blocking splice threads per connection (simple,
    but many threads and context switches: about half of splice's throughput); ``"asyncio"``:
    the protocols above on the event loop.
    """

    def __init__(self, name: str, backends: list[Backend], *, affinity_timeout: float | None = None,
                 connect_timeout: float = 1.0, attempts: int = 3, mode: str = DEFAULT_MODE):
        if mode not in MODES:
            raise ValueError(f"forwarder mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.name = name
        self.balancer = Balancer(backends, affinity_timeout=affinity_timeout)
        self.connect_timeout = connect_timeout
        self.attempts = attempts
        self.mode = mode
        self.servers: list[asyncio.base_events.Server] = []
        self.listeners: list[socket.socket] = []
        self.bound: list[tuple[str, int]] = []
        self.active: set[asyncio.Task] = set()          # one per accepted connection until handed over
        self.accept_loops: set[asyncio.Task] = set()    # splice modes: one per listener
        self.stats = {"connections": 0, "failed": 0, "retries": 0}

    async def listen(self, addresses: list[tuple[str, int]]) -> None:
        loop = asyncio.get_running_loop()
        if self.mode == "cpump":
            await asyncio.to_thread(compiled_pump)      # built (or found) off the loop, once per process
        try:
            for host, port in addresses:
                if self.mode == "asyncio":
                    server = await loop.create_server(self._accepted, host, port, reuse_address=True, backlog=1024)
                    self.servers.append(server)
                    self.bound.append(server.sockets[0].getsockname()[:2])
                    continue
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(1024)
                sock.setblocking(False)
                self.listeners.append(sock)
                self.bound.append(sock.getsockname()[:2])
                self._spawn(self._accept_loop(sock), into=self.accept_loops)
        except OSError:
            self.close()
            raise

    def _spawn(self, coro, *, into: set[asyncio.Task] | None = None) -> asyncio.Task:
        tasks = self.active if into is None else into
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    # ------------------------------------------------------------------ splice mode

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, addr = await loop.sock_accept(sock)
            except OSError:
                if sock.fileno() < 0:
                    return          # closed by close()
                await asyncio.sleep(0.05)   # EMFILE and friends: back off, keep serving
                continue
            self._spawn(self._connect_splice(client, addr[0]))

    async def _connect_splice(self, client: socket.socket, client_ip: str) -> None:
        loop = asyncio.get_running_loop()
        self.stats["connections"] += 1
        for i, backend in enumerate(self.balancer.candidates(client_ip)[: self.attempts]):
            if i:
                self.stats["retries"] += 1
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(upstream, (backend.ip, backend.port)), self.connect_timeout)
            except asyncio.CancelledError:
                upstream.close()
                _reset_socket(client)
                raise
            except (OSError, TimeoutError) as exc:
                upstream.close()
                log.debug("%s: backend %s:%d failed: %s", self.name, backend.ip, backend.port, exc)
                continue
            self.balancer.chosen(client_ip, backend)
            if self.mode == "threads":
                _SplicePair(client, upstream).start()
            else:
                _hand_over(self.mode, client, upstream)
            return
        self.stats["failed"] += 1
        _reset_socket(client)

    # ------------------------------------------------------------------ asyncio mode

    def _accepted(self) -> _Half:
        client = _Half()
        self._spawn(self._connect(client))
        return client

    async def _connect(self, client: _Half) -> None:
        await asyncio.sleep(0)          # connection_made has run
        transport = client.transport
        if transport is None:
            return
        transport.pause_reading()
        peer = transport.get_extra_info("peername") or ("", 0)
        loop = asyncio.get_running_loop()
        self.stats["connections"] += 1
        for i, backend in enumerate(self.balancer.candidates(peer[0])[: self.attempts]):
            if i:
                self.stats["retries"] += 1
            try:
                _, upstream = await asyncio.wait_for(
                    loop.create_connection(_Half, backend.ip, backend.port), self.connect_timeout)
            except asyncio.CancelledError:
                _reset(transport)
                raise
            except (OSError, TimeoutError) as exc:
                log.debug("%s: backend %s:%d failed: %s", self.name, backend.ip, backend.port, exc)
                continue
            if transport.is_closing():
                upstream.transport.close()  # type: ignore[union-attr]
                return
            self.balancer.chosen(peer[0], backend)
            client.join(upstream)
            transport.resume_reading()
            await client.closed
            return
        self.stats["failed"] += 1
        _reset(transport)

    def refuse_new(self) -> None:
        """First step of a graceful close: no new connection enters a listener's accept queue
        (``refuse_new_connections``), while those already queued are still accepted and forwarded."""
        for sock in self._listening_sockets():
            refuse_new_connections(sock)

    def queued(self) -> int:
        """Connections the kernel has completed that this forwarder has not accepted yet."""
        return sum(accept_queue_length(sock) for sock in self._listening_sockets())

    def connecting(self) -> int:
        """Accepted connections still being connected to a backend (not yet handed over)."""
        return sum(1 for t in self.active if not t.done())

    def _listening_sockets(self) -> list:
        return [*self.listeners, *(sock for server in self.servers for sock in (server.sockets or ()))]

    def close(self) -> None:
        """Stop accepting; connections already forwarded run on until either side closes."""
        for s in self.servers:
            s.close()       # not wait_closed(): it would wait for every open connection
        for sock in self.listeners:
            sock.close()
        for t in list(self.accept_loops):
            t.cancel()
        self.servers, self.listeners = [], []


#: SO_ATTACH_FILTER (asm-generic/socket.h) and a one-instruction classic BPF program, ``ret #0``
_SO_ATTACH_FILTER = 26
_DROP_EVERYTHING = struct.pack("HBBI", 0x06, 0, 0, 0)


def refuse_new_connections(sock) -> bool:
    """Attach a drop-everything socket filter to a listening TCP socket.

    Closing a listener resets every connection the kernel already completed into its accept queue
    (a client that connected a moment before gets its request answered with a reset). With the
    filter, new SYNs and the last ACKs of handshakes in progress are dropped, so the queue only
    empties: the owner accepts what is queued, then closes. Clients see a connect that is not
    answered (their connect timeout sends them elsewhere), never a reset."""
    import ctypes
    program = ctypes.create_string_buffer(_DROP_EVERYTHING, len(_DROP_EVERYTHING))
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))   # struct sock_fprog; the kernel copies it
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        return True
    except OSError as exc:
        log.debug("cannot filter listener %s: %s", sock, exc)
        return False


def accept_queue_length(sock) -> int:
    """For a listening TCP socket, TCP_INFO's ``tcpi_unacked`` is its accept queue's length."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return struct.unpack_from("I", info, 24)[0]
    except (OSError, struct.error):
        return 0


def _reset_socket(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


_CHUNK = 1 << 20


class _SplicePair:
    """Two threads moving bytes client->upstream and upstream->client with splice(2)."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client, self.upstream = client, upstream
        self.lock = threading.Lock()
        self.done = 0

    def start(self) -> None:
        for s in (self.client, self.upstream):
            s.setblocking(True)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(self.client, self.upstream), daemon=True, name="splice c>u").start()
        threading.Thread(target=self._pump, args=(self.upstream, self.client), daemon=True, name="splice u>c").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        r, w = os.pipe()
        failed = False
        try:
            s_fd, d_fd = src.fileno(), dst.fileno()
            while True:
                n = os.splice(s_fd, w, _CHUNK, flags=_SPLICE_F_MOVE)
                if n == 0:
                    break
                while n:
                    n -= os.splice(r, d_fd, n, flags=_SPLICE_F_MOVE)
        except OSError:
            failed = True
        finally:
            os.close(r)
            os.close(w)
            try:
                dst.shutdown(socket.SHUT_WR if not failed else socket.SHUT_RDWR)
                if failed:
                    src.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            with self.lock:
                self.done += 1
                last = self.done == 2
            if last:
                self.client.close()
                self.upstream.close()


_SPLICE_F_MOVE = getattr(os, "SPLICE_F_MOVE", 1)


# ---------------------------------------------------------------------- epoll + splice pump

_SPLICE_NB = _SPLICE_F_MOVE | getattr(os, "SPLICE_F_NONBLOCK", 2)
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
_EPOLLHUP_ERR = select.EPOLLHUP | select.EPOLLERR
_PIPE_BYTES = 1 << 16       # what one splice into an empty default pipe (16 pages) can take


class _Direction:
    """One direction of a connection: ``src`` -> a pipe -> ``dst``; the bytes never enter Python.

    ``pending`` counts the bytes in the pipe. ``src`` is read only while the pipe is empty, so a
    read never fails for want of pipe room and nothing is ever stuck there unseen. When ``src``
    ends (EOF; or an error, then ``broken``) and the pipe is flushed, ``dst`` gets its FIN
    (``shut``). Errors writing ``dst`` propagate: that peer is gone.
    """

    __slots__ = ("src", "dst", "src_fd", "dst_fd", "r", "w", "pending", "eof", "broken", "shut")

    def __init__(self, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.r, self.w = os.pipe()
        self.pending = 0
        self.eof = self.broken = self.shut = False

    def flush(self) -> bool:
        """Write the pipe into ``dst``; False while ``dst`` would block."""
        while self.pending:
            try:
                self.pending -= os.splice(self.r, self.dst_fd, self.pending, flags=_SPLICE_NB)
            except BlockingIOError:
                return False
        if self.eof and not self.shut:
            self.shut = True
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return True

    def pump(self, *, drain: bool) -> bool:
        """Move what ``src`` holds into ``dst``; True when ``src`` has nothing more for now.

        Stops when ``src`` would block (True), the pipe is stuck behind a full ``dst`` (False:
        ``dst`` becoming writable resumes it) or ``src`` ended (False). Without ``drain`` a short
        read also ends the turn (True): level-triggered epoll reports ``src`` again if more came,
        which saves one EAGAIN read per message. ``drain`` is for a source epoll no longer
        watches (it hung up): there, only reading to its end finds the rest and its EOF.
        """
        while not self.eof:
            if self.pending and not self.flush():
                return False
            try:
                n = os.splice(self.src_fd, self.w, _PIPE_BYTES, flags=_SPLICE_NB)
            except BlockingIOError:
                return True
            except OSError:             # reset or timed out: its end; the connection closes once flushed
                self.broken = True
                n = 0
            if n == 0:
                self.eof = True
                self.flush()
                return False
            self.pending = n
            if not self.flush():
                return False
            if n < _PIPE_BYTES and not drain:
                return True
        return False

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class _Link:
    """A proxied connection: the client, its upstream and the two directions between them."""

    __slots__ = ("client", "upstream", "up", "down", "dropped")

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client, self.upstream = client, upstream
        self.up = _Direction(client, upstream)
        try:
            self.down = _Direction(upstream, client)
        except OSError:
            self.up.close()
            raise
        self.dropped = False

    def sides(self) -> tuple[tuple[socket.socket, _Direction, _Direction], ...]:
        """Each socket with the direction that reads it and the direction that writes it."""
        return ((self.client, self.up, self.down), (self.upstream, self.down, self.up))

    @property
    def over(self) -> bool:
        """Both FINs passed on, or one side failed (what is left for it cannot be delivered)."""
        up, down = self.up, self.down
        return (up.shut and down.shut) or (up.broken and up.shut) or (down.broken and down.shut)

    def close(self) -> None:
        for d in (self.up, self.down):
            d.close()
        for s in (self.client, self.upstream):
            s.close()


def _mask(reading: _Direction, writing: _Direction) -> int:
    mask = 0
    if not reading.eof and not reading.pending:
        mask |= _EPOLLIN
    if writing.pending:
        mask |= _EPOLLOUT
    return mask


class _Pump:
    """One thread, one level-triggered epoll: moves the bytes of many connections with splice(2).

    A socket is watched for reading while the direction it feeds has an empty pipe, and for
    writing while the direction into it has bytes stuck in its pipe. No asyncio machinery per
    chunk (the cost of ``mode="asyncio"``), no thread per connection (the cost of ``"threads"``).

    Two rules keep every byte and every FIN moving (both broke the first version, see
    tests/network/test_forwarder.py's stress tests):

    - A socket that hung up (EPOLLHUP/ERR, reported whatever the mask, so it would spin) is
      *parked*: taken out of epoll. Whatever it still holds is read by draining it to its end
      whenever its pipe empties, instead of waiting for an event that will never come again.
    - A finished connection's sockets and pipes are closed only after the whole batch of events
      is handled: a closed fd number reused at once by a new connection would otherwise receive
      a stale event of the old one (a hang-up that closed the new connection).
    """

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ep.register(self.wake_r, _EPOLLIN)
        self.incoming: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.by_fd: dict[int, tuple[_Link, _Direction, _Direction]] = {}
        self.masks: dict[int, int] = {}         # fds in the epoll and their masks; parked fds are not
        self.finished: list[_Link] = []
        self.thread = threading.Thread(target=self._run, daemon=True, name="proxy pump")
        self.thread.start()

    @property
    def open_links(self) -> int:
        return len({id(entry[0]) for entry in list(self.by_fd.values())})

    def describe(self) -> list[str]:
        """One line per open connection (peers, parked sockets, each direction's state): diagnostics."""
        out = []
        for link in {id(e[0]): e[0] for e in list(self.by_fd.values())}.values():
            try:
                peers = f"{link.client.getpeername()} -> {link.upstream.getpeername()}"
            except OSError as exc:
                peers = f"({exc})"
            dirs = " ".join(f"{n}:pending={d.pending},eof={d.eof},shut={d.shut},broken={d.broken}"
                            for n, d in (("up", link.up), ("down", link.down)))
            watched = " ".join(f"{n}={self.masks.get(s.fileno(), 'parked')}"
                               for n, s in (("client", link.client), ("upstream", link.upstream)))
            out.append(f"{peers} {dirs} {watched}")
        return out

    def add(self, client: socket.socket, upstream: socket.socket) -> None:
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.incoming.append((client, upstream))
        try:
            os.write(self.wake_w, b"x")
        except BlockingIOError:
            pass                # the pipe is full of wake-ups already: the pump will look

    def _run(self) -> None:
        while True:
            try:
                events = self.ep.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self.wake_r:
                    try:
                        self._accept_new()
                    except Exception:
                        log.exception("proxy pump: taking new connections failed")
                    continue
                entry = self.by_fd.get(fd)
                if entry is None:
                    continue        # its connection ended earlier in this batch
                try:
                    self._serve(fd, ev, *entry)
                except Exception:   # never let one connection stop the pump for every other
                    log.exception("proxy pump: dropping a connection")
                    self._drop(entry[0])
            for link in self.finished:
                link.close()
            self.finished.clear()

    def _accept_new(self) -> None:
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        with self.lock:
            new, self.incoming = self.incoming, []
        for client, upstream in new:
            try:
                link = _Link(client, upstream)
            except OSError:             # no fds left for its pipes: refuse this one, keep the others
                log.exception("proxy pump: cannot take a new connection")
                _reset_socket(client)
                upstream.close()
                continue
            try:
                for sock, reading, writing in link.sides():
                    fd = sock.fileno()
                    self.by_fd[fd] = (link, reading, writing)
                    self.ep.register(fd, _EPOLLIN)
                    self.masks[fd] = _EPOLLIN
            except OSError:
                log.exception("proxy pump: cannot watch a new connection")
                self._drop(link)

    def _serve(self, fd: int, ev: int, link: _Link, reading: _Direction, writing: _Direction) -> None:
        if ev == _EPOLLIN:
            # the steady flow: bytes to pass on. If they all went through and the source did not
            # end, no mask changes (the pipe was empty before and is again): done
            try:
                reading.pump(drain=False)
            except OSError:
                self._drop(link)
                return
            if not reading.pending and not reading.eof:
                return
            hung_up = quiet = False
        else:
            hung_up = bool(ev & _EPOLLHUP_ERR)
            quiet = False
            try:
                if writing.pending and ev & (_EPOLLOUT | _EPOLLHUP_ERR) and writing.flush():
                    if writing.src_fd not in self.masks and writing.pump(drain=True):
                        self._unpark(writing.src_fd)
                if not reading.pending and ev & (_EPOLLIN | _EPOLLHUP_ERR):
                    quiet = reading.pump(drain=hung_up)
            except OSError:         # writing a peer failed: it is gone, nothing more can reach it
                self._drop(link)
                return
        if link.over:
            self._drop(link)
            return
        if hung_up and not quiet and not writing.pending:
            self._park(fd)
        for sock, r_dir, w_dir in link.sides():
            sfd = sock.fileno()
            mask = _mask(r_dir, w_dir)
            if sfd in self.masks and self.masks[sfd] != mask:
                self.ep.modify(sfd, mask)       # only on change: none at all in steady flow
                self.masks[sfd] = mask

    def _park(self, fd: int) -> None:
        if self.masks.pop(fd, None) is not None:
            self.ep.unregister(fd)

    def _unpark(self, fd: int) -> None:
        entry = self.by_fd[fd]
        mask = _mask(entry[1], entry[2])
        self.ep.register(fd, mask)
        self.masks[fd] = mask

    def _drop(self, link: _Link) -> None:
        """Forget a connection now; close it after this batch of events (see the class doc)."""
        if link.dropped:
            return
        link.dropped = True
        for sock in (link.client, link.upstream):
            fd = sock.fileno()
            self.by_fd.pop(fd, None)
            if self.masks.pop(fd, None) is not None:
                try:
                    self.ep.unregister(fd)
                except OSError:
                    pass
        self.finished.append(link)


_PUMP: _Pump | None = None
_PUMP_LOCK = threading.Lock()


def shared_pump() -> _Pump:
    global _PUMP
    with _PUMP_LOCK:
        if _PUMP is None:
            _PUMP = _Pump()
        return _PUMP


def _hand_over(mode: str, client: socket.socket, upstream: socket.socket) -> None:
    """Give a connected pair to the pump of ``mode``: the compiled one when it is there and
    takes it, else the Python pump thread."""
    if mode == "cpump":
        pump = compiled_pump()
        if pump is not None and not pump.gave_up:
            try:
                pump.add(client, upstream)
                return
            except PumpUnavailable as exc:
                log.warning("proxy: %s; this connection goes through the Python pump", exc)
    shared_pump().add(client, upstream)


def describe_pumps() -> list[str]:
    """Every open connection of this process's pumps, one line each (the SIGUSR1 dump)."""
    from node_runtime.proxy import compiled_pump as cp
    lines: list[str] = []
    if cp._SHARED is not None:
        lines += [f"ccl-pump {line}" for line in cp._SHARED.describe()]
    if _PUMP is not None:
        lines += [f"python-pump {line}" for line in _PUMP.describe()]
    return lines or ["no pump"]
