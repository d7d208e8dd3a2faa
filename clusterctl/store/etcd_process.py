"""A throwaway local etcd (Debian ``etcd-server``) on loopback, for tests and benchmarks.

Starts ``etcd`` with its own data directory on free loopback ports, waits until its v3 JSON
gateway answers, and stops it (SIGTERM, then SIGKILL). By default it runs as bootstrap runs it:
TLS on client and peer ports with client certificates required, from a throwaway etcd CA in
``<data_dir>/pki`` (``clusterctl.store.etcd_tls``), so every test and bench on it exercises the TLS
path; ``client_tls`` / ``store_options()`` / ``store_config()`` give what a client needs.
``tls=False`` runs it on plain http (for side-by-side measurements). Free ports are found by binding port 0;
another process may grab one before etcd does, so a start that fails that way is retried on new
ports. Output goes to ``<data_dir>/etcd.log`` (shown in the error if it does not come up).

``LocalEtcdCluster`` runs several members on loopback (for elections, lost quorum, a member
down): all are spawned before any is waited for, since none answers before a quorum is up.
``pause``/``resume`` (SIGSTOP/SIGCONT) take a member away and back without a restart.
Heartbeat and election timeouts are settable so tests see an election in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from clusterctl.store.base import StoreError
from clusterctl.store.etcd_tls import ClientTLS, EtcdCA, MemberTLS

ETCD_BINARY = "etcd"
#: whether LocalEtcd and LocalEtcdCluster run TLS when the caller does not say (``tls=``)
DEFAULT_TLS = True


class EtcdProcessError(StoreError):
    """A local etcd could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalEtcd:
    """One etcd member on 127.0.0.1. Use as a context manager or call start()/stop().

    ``tls`` (default): its certificates come from ``ca`` (an ``EtcdCA``; by default a throwaway one
    in ``<data_dir>/pki``), and a client certificate for tests is issued there too."""

    def __init__(self, data_dir: str | os.PathLike, *, binary: str = ETCD_BINARY, ready_timeout: float = 15.0,
                 name: str = "clusterctl-test", heartbeat_ms: int | None = None, election_ms: int | None = None,
                 tls: bool | None = None, ca: EtcdCA | None = None):
        self.data_dir = Path(data_dir)
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.name = name
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.tls = DEFAULT_TLS if tls is None else tls
        self.ca = ca if ca is not None else EtcdCA(self.data_dir / "pki")
        self.member_tls: MemberTLS | None = None
        self.client_tls: ClientTLS | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self.client_port = 0
        self.peer_port = 0
        self.process: subprocess.Popen | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    def store_options(self) -> dict[str, str]:
        """``EtcdStore`` keyword arguments for this member's TLS (empty on plain http)."""
        return self.client_tls.store_options() if self.client_tls is not None else {}

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """What a client needs to reach this member (None on plain http); made once, then shared."""
        if self.client_tls is None:
            return None
        if self._ssl_context is None:
            self._ssl_context = self.client_tls.ssl_context()
        return self._ssl_context

    def store_config(self, **extra) -> dict:
        """A store config (``clusterctl.store.open_store``, the control plane's ``store:``) for this member."""
        return {"backend": "etcd", "endpoints": [self.endpoint], **self.store_options(), **extra}

    def make_certificates(self) -> None:
        """The member's serving/peer certificate and a client certificate (once; kept on restarts)."""
        if not self.tls or self.member_tls is not None:
            return
        self.member_tls, _ = self.ca.issue_member(f"member-{self.name}", name=self.name)
        self.client_tls, _ = self.ca.issue_client("client", common_name="clusterctl-test-client")

    def start(self) -> "LocalEtcd":
        _check_binary(self.binary)
        self.make_certificates()
        last_error = ""
        for _ in range(4):
            self.client_port, self.peer_port = free_port(), free_port()
            try:
                self._spawn(f"{self.name}={self.peer_url}")
                self._wait_ready(time.monotonic() + self.ready_timeout)
                return self
            except EtcdProcessError as exc:
                last_error = str(exc)
                self.stop()
        raise EtcdProcessError(last_error)

    def _spawn(self, initial_cluster: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        member_dir = self.data_dir / "member-data"
        args = [
            self.binary, "--name", self.name, "--data-dir", str(member_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
            "--logger", "zap",
            # with TLS, etcd 3.4 warns on every gateway request ("ignoring common name in gRPC-gateway
            # proxy request"): a log line per request, so only errors are logged then
            "--log-level", "error" if self.tls else "warn",
        ]
        if self.member_tls is not None:
            args += self.member_tls.etcd_args()
        if self.heartbeat_ms is not None:
            args += ["--heartbeat-interval", str(self.heartbeat_ms)]
        if self.election_ms is not None:
            args += ["--election-timeout", str(self.election_ms)]
        env = dict(os.environ)
        env.setdefault("ETCD_UNSUPPORTED_ARCH", os.uname().machine if os.uname().machine != "x86_64" else "")
        if not env["ETCD_UNSUPPORTED_ARCH"]:
            del env["ETCD_UNSUPPORTED_ARCH"]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "etcd.log"

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EtcdProcessError(f"etcd {self.name} exited with {self.process.returncode} on ports "
                                       f"{self.client_port}/{self.peer_port}: {self._log_tail(self.log_path)}")
            if self._ready():
                return
            time.sleep(0.05)
        raise EtcdProcessError(f"etcd {self.name} on {self.endpoint} not ready: "
                               f"{self._log_tail(self.log_path)}")

    def pause(self) -> None:
        """SIGSTOP: the member stops answering peers and clients (as if its host hung)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)  # not os.kill: a reaped pid may be someone else's

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def _ready(self) -> bool:
        request = urllib.request.Request(self.endpoint + "/v3/kv/range", data=b'{"key":"AA=="}', method="POST")
        try:
            with urllib.request.urlopen(request, timeout=1, context=self.client_ssl_context()) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @staticmethod
    def _log_tail(path: Path) -> str:
        try:
            return path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a paused member cannot act on SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "LocalEtcd":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class LocalEtcdCluster:
    """``size`` etcd members on 127.0.0.1 forming one cluster (``members[i]`` are ``LocalEtcd``).

    With ``tls`` (default) the members share one throwaway etcd CA in ``<data_dir>/pki`` and peer
    with each other over TLS, each with its own certificate."""

    def __init__(self, data_dir: str | os.PathLike, *, size: int = 3, binary: str = ETCD_BINARY,
                 ready_timeout: float = 20.0, heartbeat_ms: int | None = None, election_ms: int | None = None,
                 name: str = "clusterctl-test", tls: bool | None = None):
        self.ready_timeout = ready_timeout
        self.binary = binary
        self.tls = tls = DEFAULT_TLS if tls is None else tls
        self.ca = EtcdCA(Path(data_dir) / "pki")
        self.members = [LocalEtcd(Path(data_dir) / f"m{i}", binary=binary, name=f"{name}-{i}",
                                  heartbeat_ms=heartbeat_ms, election_ms=election_ms, tls=tls, ca=self.ca)
                        for i in range(size)]

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    @property
    def client_tls(self) -> ClientTLS | None:
        return self.members[0].client_tls

    def store_options(self) -> dict[str, str]:
        return self.members[0].store_options()

    def store_config(self, **extra) -> dict:
        return {"backend": "etcd", "endpoints": self.endpoints, **self.store_options(), **extra}

    def start(self) -> "LocalEtcdCluster":
        _check_binary(self.binary)
        for member in self.members:
            member.make_certificates()
        last_error = ""
        for _ in range(3):
            for member in self.members:
                member.client_port, member.peer_port = free_port(), free_port()
            initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
            try:
                for member in self.members:
                    member._spawn(initial)
                deadline = time.monotonic() + self.ready_timeout
                for member in self.members:
                    member._wait_ready(deadline)
                return self
            except EtcdProcessError as exc:
                last_error = str(exc)
                self.stop()
                for member in self.members:  # a half-made cluster cannot be joined again: start clean
                    shutil.rmtree(member.data_dir / "member-data", ignore_errors=True)
        raise EtcdProcessError(last_error)

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def __enter__(self) -> "LocalEtcdCluster":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _check_binary(binary: str) -> None:
    if shutil.which(binary) is None:
        raise EtcdProcessError(f"{binary!r} is not on PATH (Debian package etcd-server)")
