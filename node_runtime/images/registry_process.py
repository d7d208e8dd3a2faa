"""Run Debian's ``docker-registry`` (the CNCF distribution registry) on loopback.

Used by tests, benchmarks and ``clusterctl up`` ("a local registry when images need one"). The
registry keeps its blobs under ``data_dir``; it listens on 127.0.0.1 only. With ``users`` (name →
password) it is a private registry: ``auth: htpasswd`` with a bcrypt file written into ``data_dir``
(the ``bcrypt`` module; cost 4, the lowest, since the registry checks it on every request), and
every request without valid Basic credentials is answered ``401``. ``auth`` is any other ``auth:``
block of the registry's configuration (e.g. ``token:`` for a Bearer token server), used verbatim.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from node_runtime.errors import NodeRuntimeError

_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""

_AUTH = """auth:
  htpasswd:
    realm: clusterctl-test-registry
    path: {path}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalRegistry:
    data_dir: Path
    port: int
    process: subprocess.Popen | None = None
    users: dict[str, str] | None = None
    auth: str | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "LocalRegistry":
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise NodeRuntimeError("docker-registry not found: apt-get install docker-registry")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.data_dir / "config.yml"
        text = _CONFIG.format(root=self.data_dir / "storage", port=self.port)
        if self.users:
            import bcrypt
            htpasswd = self.data_dir / "htpasswd"
            htpasswd.write_text("".join(f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode()}\n"
                                        for user, pw in self.users.items()))
            htpasswd.chmod(0o600)
            text += _AUTH.format(path=htpasswd)
        elif self.auth:
            text += self.auth if self.auth.endswith("\n") else self.auth + "\n"
        cfg.write_text(text)
        log = open(self.data_dir / "registry.log", "ab")
        self.process = subprocess.Popen([binary, "serve", str(cfg)], stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NodeRuntimeError(f"docker-registry exited with {self.process.returncode}; see {self.data_dir / 'registry.log'}")
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and (self.users or self.auth):
                    return self  # serving, and asking for credentials as configured
                time.sleep(0.05)
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NodeRuntimeError(f"docker-registry did not answer on {self.address} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_registry(data_dir: str | Path, port: int | None = None, *, users: dict[str, str] | None = None,
                   auth: str | None = None, timeout: float = 15.0) -> LocalRegistry:
    """A registry on loopback; with ``users`` (name → password) only they may push or pull."""
    return LocalRegistry(Path(data_dir), port or free_port(), users=users, auth=auth).start(timeout)
