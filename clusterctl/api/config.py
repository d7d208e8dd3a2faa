"""The control-plane configuration file (YAML) and its defaults.

One file says everything a control-plane process needs: where its data lives, where it listens,
which store backend to use, where the PKI, tokens and secrets-encryption key are, and the
timings the server uses (watch bookmarks, graceful pod deletion, namespace cleanup). Relative
paths are relative to ``data_dir`` (the etcd store's ``ca_file``/``cert_file``/``key_file`` too).
``clusterctl control-plane init`` writes one with defaults. An etcd endpoint on plain ``http://``
is refused unless it is on loopback: the store carries every object and Secret.

Example::

    data_dir: /var/lib/clusterctl
    bind_address: 127.0.0.1
    port: 6443
    store: {backend: tinydb}          # or etcd over TLS with a client certificate:
    # store: {backend: etcd, endpoints: [https://127.0.0.1:2379, https://10.0.0.2:2379],
    #         ca_file: /var/lib/clusterctl/etcd-pki/ca.crt,
    #         cert_file: /var/lib/clusterctl/etcd-pki/apiserver-etcd-client.crt,
    #         key_file: /var/lib/clusterctl/etcd-pki/apiserver-etcd-client.key}
    tls: true
    tls_names: [localhost, cp.example]
    tokens_file: tokens.yaml
    encryption_key_file: pki/secrets.key
    service_cidr: 10.96.0.0/16
    node_port_range: 30000-32767
    timings: {bookmark_interval: 60, pod_deletion_margin: 5}
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from clusterctl.errors import UsageError


class ConfigError(UsageError):
    """The control-plane config file is missing, malformed or has a bad value."""


@dataclass
class Timings:
    #: seconds between BOOKMARK events on watches that asked for them (Kubernetes: ~60)
    bookmark_interval: float = 60.0
    #: server-side cap on a watch's life when the client gives no timeoutSeconds (Kubernetes: 30-60 min)
    watch_max_seconds: float = 1800.0
    #: a gracefully deleted pod nobody finalizes is removed this long after its grace period
    pod_deletion_margin: float = 5.0
    #: how often namespace termination re-checks for leftover content
    namespace_cleanup_poll: float = 0.2
    #: give up waiting on finalizers of namespace content after this long, then remove the rest
    namespace_cleanup_timeout: float = 60.0
    #: at start, how long an unavailable store (etcd members still forming their cluster) is waited
    #: for before the server gives up: a control plane started with its etcd must not exit first
    store_start_timeout: float = 120.0
    #: a Service's clusterIP/nodePort reservation whose Service is gone is reclaimed after this long
    #: (an in-flight create on another API server is never robbed of its address)
    service_reservation_grace: float = 60.0


@dataclass
class ControlPlaneConfig:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443
    store: dict = field(default_factory=lambda: {"backend": "tinydb"})
    tls: bool = True
    tls_names: list[str] = field(default_factory=list)
    pki_dir: str = "pki"
    tokens_file: str = "tokens.yaml"
    encryption_key_file: str | None = "pki/secrets.key"
    kubeconfig: str = "kubeconfig"
    service_cidr: str = "10.96.0.0/16"
    node_port_range: str = "30000-32767"
    max_body_bytes: int = 3 * 1024 * 1024 // 2
    timings: Timings = field(default_factory=Timings)
    log_level: str = "INFO"
    #: share one store watch per kind among API watches: auto (= for etcd), true, false
    watch_cache: str = "auto"
    #: "module:function" components to run in-process (None = the CLI's DEFAULT_COMPONENTS)
    components: list[str] | None = None
    #: settings read by components themselves (the controller manager, the scheduler, others)
    controllers: dict = field(default_factory=dict)
    scheduler: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def path(self, relative: str | Path) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.data_dir / p

    @property
    def store_config(self) -> dict:
        cfg = dict(self.store)
        if cfg.get("backend", "tinydb") == "tinydb":
            cfg.setdefault("data_dir", str(self.path(cfg.get("data_dir", "store"))))
        elif cfg.get("backend") == "etcd":
            for name in _ETCD_TLS_FILES:
                if cfg.get(name):
                    cfg[name] = str(self.path(cfg[name]))
        return cfg

    @property
    def node_ports(self) -> tuple[int, int]:
        lo, _, hi = self.node_port_range.partition("-")
        return int(lo), int(hi)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Timings):
                value = {t.name: getattr(value, t.name) for t in fields(Timings)}
            out[f.name] = value
        return out


def from_dict(raw: dict, *, where: str = "config") -> ControlPlaneConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    known = {f.name for f in fields(ControlPlaneConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    if not raw.get("data_dir"):
        raise ConfigError(f"{where}: 'data_dir' is required")
    values = dict(raw)
    values["data_dir"] = Path(values["data_dir"]).resolve()
    timings = values.pop("timings", None) or {}
    if not isinstance(timings, dict):
        raise ConfigError(f"{where}: 'timings' must be a mapping")
    tknown = {f.name for f in fields(Timings)}
    if set(timings) - tknown:
        raise ConfigError(f"{where}: unknown timing(s): {', '.join(sorted(set(timings) - tknown))}")
    try:
        cfg = ControlPlaneConfig(**values, timings=Timings(**{k: float(v) for k, v in timings.items()}))
        cfg.port = int(cfg.port)
        ipaddress.ip_network(cfg.service_cidr)
        lo, hi = cfg.node_ports
        if not 0 < lo <= hi < 65536:
            raise ValueError(f"bad node_port_range {cfg.node_port_range!r}")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if not isinstance(cfg.store, dict):
        raise ConfigError(f"{where}: 'store' must be a mapping")
    if cfg.store.get("backend") == "etcd":
        _check_etcd_store(cfg.store, where)
    return cfg


#: the etcd store's TLS settings (paths; relative ones are under data_dir)
_ETCD_TLS_FILES = ("ca_file", "cert_file", "key_file")


def _check_etcd_store(store: dict, where: str) -> None:
    """Refuse an etcd store that would talk to etcd in the clear across a network, or half a key pair."""
    from clusterctl.store.etcd_tls import insecure_endpoint_problem

    endpoints = store.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        raise ConfigError(f"{where}: store.endpoints must be a list of etcd URLs (https://HOST:2379)")
    for endpoint in endpoints:
        problem = insecure_endpoint_problem(str(endpoint))
        if problem:
            raise ConfigError(f"{where}: store.endpoints: {problem}")
    if bool(store.get("cert_file")) != bool(store.get("key_file")):
        raise ConfigError(f"{where}: store.cert_file and store.key_file go together (the API server's "
                          f"etcd client certificate and its key)")
    if store.get("cert_file") and not store.get("ca_file"):
        raise ConfigError(f"{where}: store.ca_file is needed with a client certificate "
                          f"(the etcd CA that verifies etcd's serving certificate)")


def load(path: str | Path) -> ControlPlaneConfig:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read control-plane config {p}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"control-plane config {p} is not valid YAML: {exc}") from exc
    return from_dict(raw or {}, where=str(p))


def save(cfg: ControlPlaneConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
