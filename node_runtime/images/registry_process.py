"""Run Debian's ``docker-registry`` (the CNCF distribution registry) on loopback.

Used by tests, benchmarks and ``clusterctl up`` ("a local registry when images need one"). The
registry keeps its blobs under ``data_dir``; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalRegistry:
    data_dir: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "LocalRegistry":
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise NodeRuntimeError("docker-registry not found: apt-get install docker-registry")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.data_dir / "config.yml"
        cfg.write_text(_CONFIG.format(root=self.data_dir / "storage", port=self.port))
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


def start_registry(data_dir: str | Path, port: int | None = None) -> LocalRegistry:
    return LocalRegistry(Path(data_dir), port or free_port()).start()
