"""The node agent's configuration (``node-runtime --config FILE``, YAML) and its timings.

Owns every knob of one agent: who it is (``node_name``, labels, taints, ``address``), how it
reaches the API (a kubeconfig, or ``server`` + ``token`` + ``ca_file``), where it keeps things
(``data_dir`` with ``state/``, ``images/``, ``logs/``, ``pods/``), its runtime, its registries and
every timing. Timings are data, not constants, so tests run the real lifecycle with 0.1 s
intervals instead of Kubernetes' 10 s / 5 min.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from node_runtime.errors import NodeRuntimeError

_SAFE = re.compile(r"[^a-z0-9.-]")


class ConfigError(NodeRuntimeError):
    """The agent config file is missing, unreadable or invalid."""


@dataclass
class Timings:
    lease_duration: float = 40.0          # Lease.spec.leaseDurationSeconds
    lease_renew: float = 10.0             # how often the Lease is renewed
    status_update: float = 10.0           # Node status (conditions, usage) refresh
    crashloop_base: float = 10.0          # first restart back-off
    crashloop_max: float = 300.0          # back-off ceiling (5 min)
    crashloop_reset: float = 600.0        # running this long clears the back-off
    image_pull_backoff_base: float = 10.0
    image_pull_backoff_max: float = 300.0
    probe_period: float = 10.0            # default periodSeconds when the probe has none
    probe_timeout: float = 1.0            # default timeoutSeconds
    probe_scale: float = 1.0              # multiplies probes' periodSeconds/initialDelaySeconds (tests: 0.1)
    grace_scale: float = 1.0              # multiplies terminationGracePeriodSeconds (tests: small)
    configmap_sync: float = 10.0          # how often mounted configMap/secret volumes are refreshed
    default_grace: float = 30.0
    image_gc_interval: float = 60.0       # how often disk usage is checked for image garbage collection
    image_gc_high_percent: float = 85.0   # GC unused images when the data dir's disk is fuller than this
    status_coalesce: float = 1.0          # how long a new pod's first status write may wait for its containers to start


@dataclass
class AgentConfig:
    node_name: str
    data_dir: Path
    kubeconfig: str | None = None
    server: str | None = None
    token: str | None = None
    ca_file: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict] = field(default_factory=list)
    runtime: str = "process"
    registries_allowed: list[str] | None = None
    registries_insecure: list[str] = field(default_factory=list)
    registries_credentials: dict[str, tuple[str, str]] = field(default_factory=dict)   # host -> (user, password)
    address: str = "127.0.0.1"
    pod_cidr: str | None = None
    cluster_dns: str | None = None
    cluster_domain: str = "cluster.local"
    listen_address: str | None = None     # the agent's HTTPS endpoint (logs, exec, stats); None = ``address``
    listen_port: int = 0                  # 0 = any free port; published in Node.status.daemonEndpoints
    max_pods: int = 110
    #: connections to the API server, watches included (the agent's 2, plus 5 more with
    #: ``network: bridge``). Each TLS connection holds ~0.25 MB; a burst of 50 pod starts opened
    #: ~40 when this was 64, 10 MB of the agent's RSS, and no faster (the API server is one process)
    api_connections: int = 16
    #: "bridge": real pod network (netns + bridge + host-gw routes), Service proxy and DNS
    #: (``node_runtime.network.node.NodeNetwork``); "loopback": a netns per pod with only ``lo``
    #: (no proxy) — what hollow test setups and the pods benchmark use.
    network: str = "loopback"
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    timings: Timings = field(default_factory=Timings)

    @property
    def safe_name(self) -> str:
        """The node name made safe for files, cgroups and netns names."""
        return _SAFE.sub("-", self.node_name.lower())[:40]

    def dir(self, sub: str) -> Path:
        p = self.data_dir / sub
        p.mkdir(parents=True, exist_ok=True)
        return p

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, base: Path | None = None) -> AgentConfig:
        if not isinstance(raw, dict):
            raise ConfigError("agent config must be a mapping")
        raw = dict(raw)
        name = raw.pop("node_name", None) or socket.gethostname()
        data_dir = raw.pop("data_dir", None)
        if not data_dir:
            raise ConfigError("agent config needs data_dir")
        data_dir = Path(data_dir)
        if base is not None and not data_dir.is_absolute():
            data_dir = base / data_dir
        timings_raw = raw.pop("timings", None) or {}
        known_t = {f.name for f in fields(Timings)}
        bad = set(timings_raw) - known_t
        if bad:
            raise ConfigError(f"unknown timings: {', '.join(sorted(bad))} (known: {', '.join(sorted(known_t))})")
        timings = Timings(**{k: float(v) for k, v in timings_raw.items()})
        regs = raw.pop("registries", None) or {}
        kwargs: dict[str, Any] = {}
        if regs:
            kwargs["registries_allowed"] = regs.get("allowed")
            kwargs["registries_insecure"] = list(regs.get("insecure") or [])
            creds = regs.get("credentials") or {}
            try:
                kwargs["registries_credentials"] = {h: (str(c["username"]), str(c["password"])) for h, c in creds.items()}
            except (KeyError, TypeError, AttributeError) as exc:
                raise ConfigError("registries.credentials must map host -> {username, password}") from exc
        known = {f.name for f in fields(cls)} - {"node_name", "data_dir", "timings"}
        bad = set(raw) - known
        if bad:
            raise ConfigError(f"unknown agent config keys: {', '.join(sorted(bad))}")
        kwargs.update(raw)
        if "api_connections" in kwargs and (not isinstance(kwargs["api_connections"], int) or kwargs["api_connections"] < 8):
            raise ConfigError("api_connections must be an integer >= 8 (the agent's watches hold up to 7 connections)")
        if kwargs.get("runtime", "process") not in ("process", "podman"):
            raise ConfigError(f"runtime must be process or podman, not {kwargs['runtime']!r}")
        return cls(node_name=str(name), data_dir=data_dir.resolve(), timings=timings, **kwargs)

    @classmethod
    def load(cls, path: str | Path) -> AgentConfig:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read agent config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"agent config {path} is not valid YAML: {exc}") from exc
        return cls.from_dict(raw, base=path.parent)
