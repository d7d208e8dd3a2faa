"""A throwaway local etcd (Debian ``etcd-server``) on loopback, for tests and benchmarks.

Starts ``etcd`` with its own data directory on free loopback ports, waits until its v3 JSON
gateway answers, and stops it (SIGTERM, then SIGKILL). Free ports are found by binding port 0;
another process may grab one before etcd does, so a start that fails that way is retried on new
ports. Output goes to ``<data_dir>/etcd.log`` (shown in the error if it does not come up).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from clusterctl.store.base import StoreError

ETCD_BINARY = "etcd"


class EtcdProcessError(StoreError):
    """A local etcd could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalEtcd:
    """One etcd member on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(self, data_dir: str | os.PathLike, *, binary: str = ETCD_BINARY, ready_timeout: float = 15.0,
                 name: str = "clusterctl-test"):
        self.data_dir = Path(data_dir)
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.name = name
        self.client_port = 0
        self.peer_port = 0
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> "LocalEtcd":
        if shutil.which(self.binary) is None:
            raise EtcdProcessError(f"{self.binary!r} is not on PATH (Debian package etcd-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(4):
            self.client_port, self.peer_port = free_port(), free_port()
            try:
                self._launch()
                return self
            except EtcdProcessError as exc:
                last_error = str(exc)
                self.stop()
        raise EtcdProcessError(last_error)

    def _launch(self) -> None:
        member_dir = self.data_dir / "member-data"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.binary, "--name", self.name, "--data-dir", str(member_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--logger", "zap",
        ]
        env = dict(os.environ)
        env.setdefault("ETCD_UNSUPPORTED_ARCH", os.uname().machine if os.uname().machine != "x86_64" else "")
        if not env["ETCD_UNSUPPORTED_ARCH"]:
            del env["ETCD_UNSUPPORTED_ARCH"]
        log_path = self.data_dir / "etcd.log"
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EtcdProcessError(f"etcd exited with {self.process.returncode} on ports "
                                       f"{self.client_port}/{self.peer_port}: {self._log_tail(log_path)}")
            if self._ready():
                return
            time.sleep(0.05)
        raise EtcdProcessError(f"etcd on {self.endpoint} not ready after {self.ready_timeout} s: "
                               f"{self._log_tail(log_path)}")

    def _ready(self) -> bool:
        request = urllib.request.Request(self.endpoint + "/v3/kv/range", data=b'{"key":"AA=="}', method="POST")
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
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
