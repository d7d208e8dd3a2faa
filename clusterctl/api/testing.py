"""A real control plane in a subprocess, for tests and benchmarks of anything that talks to the API.

``start_control_plane(tmp_dir)`` initialises a data directory (CA, tokens, config) on a free
loopback port, runs ``python -m clusterctl control-plane --config ...`` and waits for
``/readyz``. The returned ``ControlPlane`` has ``url``, ``kubeconfig``, ``token``, ``ca_file``
and ``stop()`` (SIGTERM), ``kill()`` (SIGKILL, for durability tests), ``start()``/``restart()``
(same port, same data: clients keep working), ``node_token(name)`` and ``request()`` (a tiny
synchronous HTTPS client for asserting on raw responses). No scheduler or controllers run unless
asked: ``extra={"components": ["clusterctl.scheduler.scheduler:scheduler_process_component", ...]}``. Server output goes to
``<data_dir>/control-plane.log``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterctl.api.auth import TokenFile


#: control planes found dead when a test stopped them (a crash the test may not have noticed):
#: ``tests/conftest.py`` adds these to the failing test's report
UNEXPECTED_EXITS: list[str] = []
_STARTED: list[weakref.ref] = []


def note_dead_control_planes() -> None:
    """Check every control plane started in this process that is still referenced."""
    alive = [ref for ref in _STARTED if ref() is not None]
    _STARTED[:] = alive
    for ref in alive:
        cp = ref()
        if cp is not None:
            cp.note_if_dead()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ControlPlane:
    data_dir: Path
    config_path: Path
    port: int
    token: str
    tls: bool = True
    env: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    _exit_expected: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "control-plane.log"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def start(self, timeout: float = 60.0) -> "ControlPlane":
        self._exit_expected = False
        if not any(ref() is self for ref in _STARTED):
            _STARTED.append(weakref.ref(self))
        log = open(self.log_file, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clusterctl", "control-plane", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"control plane exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.request("GET", "/readyz", timeout=1.0).status == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"control plane not ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def note_if_dead(self) -> None:
        """Record (once) in ``UNEXPECTED_EXITS`` that the server exited without stop()/kill()."""
        if self.process is not None and self.process.poll() is not None and not self._exit_expected:
            self._exit_expected = True
            UNEXPECTED_EXITS.append(f"control plane {self.url} (pid {self.process.pid}) exited with "
                                    f"{self.process.returncode} before stop():\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            self.note_if_dead()
            return self.process.returncode if self.process else None
        self._exit_expected = True
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self._exit_expected = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self, timeout: float = 60.0) -> "ControlPlane":
        self.stop()
        return self.start(timeout)

    def node_token(self, node: str, timeout: float = 30.0) -> str:
        """Issue a node token (takes effect after restart or SIGHUP; this sends SIGHUP and returns
        once the running server accepts the token: a fixed pause could end before a loaded server
        reloaded its tokens)."""
        tokens = TokenFile.load(self.data_dir / "tokens.yaml")
        token = tokens.add_node(node)
        tokens.save()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + timeout
            # any answer but 401 (200, 404, 403) means the token is known
            while self.request("GET", f"/api/v1/nodes/{node}", token=token).status == 401:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"control plane {self.url} did not accept the new token of node {node} "
                                       f"within {timeout:g} s of SIGHUP:\n{self.log_tail()}")
                time.sleep(0.05)
        return token

    def request(self, method: str, path: str, body: bytes | dict | list | None = None, *,
                content_type: str = "application/json", token: str | None = "admin",
                headers: dict | None = None, timeout: float = 30.0) -> Response:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token == "admin":
            token = self.token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers), exc.read())


def start_control_plane(tmp_dir: str | os.PathLike, *, tls: bool = True, port: int | None = None,
                        store: dict | None = None, timings: dict | None = None, extra: dict | None = None,
                        env: dict | None = None, start: bool = True) -> ControlPlane:
    """Init a data dir under ``tmp_dir`` and (unless ``start=False``) run a control plane on it."""
    from clusterctl.api.cli import init_data_dir
    data_dir = Path(tmp_dir).resolve()
    port = port or free_port()
    more = dict(extra or {})
    more.setdefault("components", [])   # tests opt in to scheduler/controllers explicitly
    if timings:
        more["timings"] = timings
    config_path, _, token = init_data_dir(data_dir, port=port, tls=tls, store=store, force=True, extra=more)
    cp = ControlPlane(data_dir, config_path, port, token, tls=tls, env=dict(env or {}))
    if start:
        cp.start()
    return cp


#: timings that keep tests fast (no waiting on Kubernetes' real grace periods)
FAST_TIMINGS = {"bookmark_interval": 0.5, "pod_deletion_margin": 0.5, "namespace_cleanup_poll": 0.05,
                "namespace_cleanup_timeout": 5}


def api_client(cp: ControlPlane):
    """An official ``kubernetes`` client ApiClient for ``cp`` (from its kubeconfig)."""
    from kubernetes import config
    return config.new_client_from_config(config_file=str(cp.kubeconfig))
