"""``clusterctl control-plane``: initialise a control plane's data directory, and run it.

- ``clusterctl control-plane init --data-dir D [--port P] [--bind-address A] [--tls-name N ...]
  [--store-backend tinydb|etcd --etcd-endpoint URL ...]`` writes ``D/control-plane.yaml``, the
  cluster CA and server certificate (``D/pki``), the secrets encryption key, ``D/tokens.yaml``
  (hashes only) and ``D/kubeconfig`` (admin token + CA).
- ``clusterctl control-plane --config FILE`` runs the API server (and the components named by
  the config's ``components`` list or ``DEFAULT_COMPONENTS``: ``"module:function"`` strings, each
  an ``async def component(ctx: ApiContext)`` started with the server and cancelled on shutdown;
  ``ctx.url`` and ``ctx.kubeconfig`` tell an in-process component how to reach the API as a
  client). It (re)writes the admin kubeconfig with the real URL (so ``--port 0`` works): the
  admin token is taken from the existing kubeconfig when its hash is in the tokens file, else a
  new one is issued.
- ``clusterctl control-plane node-token --config FILE NODE`` issues a token for
  ``system:node:NODE`` (printed once; only its hash is stored). A running server picks it up on
  its next restart or ``SIGHUP``.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import logging
import os
import signal
import sys
from pathlib import Path

import yaml

from clusterctl.api import config as cfgmod
from clusterctl.api.auth import ADMIN_USER, TokenFile, hash_token, init_pki
from clusterctl.api.config import ControlPlaneConfig
from clusterctl.api.kubeconfig import write_kubeconfig
from clusterctl.errors import UsageError

CONFIG_NAME = "control-plane.yaml"
#: components every control plane runs unless its config lists its own. Empty for now: the
#: scheduler/controllers test fixtures (tests/client/live.py) start control planes without a
#: ``components`` key and run their own scheduler/controllers; once they say ``components: []``
#: this becomes ["clusterctl.scheduler.scheduler:scheduler_process_component",
#: "clusterctl.controllers.manager:controller_manager_component"].
DEFAULT_COMPONENTS: list[str] = [
    "clusterctl.scheduler.scheduler:scheduler_process_component",
    "clusterctl.controllers.manager:controller_manager_component",
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterctl control-plane", description="run the API server, scheduler and controllers")
    p.add_argument("--config", help="control-plane config file (YAML)")
    p.add_argument("--log-level", default=None)
    sub = p.add_subparsers(dest="action")
    init = sub.add_parser("init", help="write config, CA, tokens and kubeconfig into a data directory")
    init.add_argument("--data-dir", required=True)
    init.add_argument("--port", type=int, default=6443)
    init.add_argument("--bind-address", default="127.0.0.1")
    init.add_argument("--tls-name", action="append", default=[], help="extra DNS name or IP for the server certificate")
    init.add_argument("--no-tls", action="store_true", help="serve plain HTTP (tests only)")
    init.add_argument("--store-backend", choices=["tinydb", "etcd"], default="tinydb")
    init.add_argument("--etcd-endpoint", action="append", default=[])
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    tok = sub.add_parser("node-token", help="issue a bearer token for system:node:NODE")
    tok.add_argument("node")
    return p


def init_data_dir(data_dir: Path, *, port: int = 6443, bind_address: str = "127.0.0.1", tls: bool = True,
                  tls_names: list[str] | None = None, store: dict | None = None, force: bool = False,
                  extra: dict | None = None) -> tuple[Path, ControlPlaneConfig, str]:
    """Create a control plane's data directory; returns (config path, config, admin token)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / CONFIG_NAME
    if config_path.exists() and not force:
        raise UsageError(f"{config_path} exists (use --force to overwrite)")
    raw = {"data_dir": str(data_dir), "bind_address": bind_address, "port": port, "tls": tls,
           "tls_names": list(tls_names or []), "store": store or {"backend": "tinydb"}}
    raw.update(extra or {})
    cfg = cfgmod.from_dict(raw, where=str(config_path))
    cfgmod.save(cfg, config_path)
    if tls:
        init_pki(cfg.path(cfg.pki_dir), names=cfg.tls_names)
    if cfg.encryption_key_file:
        from clusterctl.api.secrets_at_rest import SecretCodec
        SecretCodec.from_file(cfg.path(cfg.encryption_key_file))
    tokens = TokenFile.load(cfg.path(cfg.tokens_file))
    token = tokens.add(ADMIN_USER, ["system:masters", "system:authenticated"])
    tokens.save()
    write_admin_kubeconfig(cfg, token, port=port)
    return config_path, cfg, token


def server_url(cfg: ControlPlaneConfig, port: int) -> str:
    host = cfg.bind_address if cfg.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"{'https' if cfg.tls else 'http'}://{host}:{port}"


def write_admin_kubeconfig(cfg: ControlPlaneConfig, token: str, *, port: int) -> Path:
    ca = cfg.path(cfg.pki_dir) / "ca.crt"
    return write_kubeconfig(cfg.path(cfg.kubeconfig), server_url(cfg, port), token,
                            ca_pem=ca.read_bytes() if cfg.tls and ca.exists() else None)


def admin_token(cfg: ControlPlaneConfig) -> str:
    """The admin token from the existing kubeconfig if still valid, else a newly issued one."""
    tokens = TokenFile.load(cfg.path(cfg.tokens_file))
    kc = cfg.path(cfg.kubeconfig)
    if kc.exists():
        try:
            users = (yaml.safe_load(kc.read_text()) or {}).get("users") or []
            token = ((users[0] or {}).get("user") or {}).get("token") if users else None
        except (yaml.YAMLError, AttributeError, IndexError):
            token = None
        if token and any(e.get("sha256") == hash_token(token) for e in tokens.entries):
            return token
    token = tokens.add(ADMIN_USER, ["system:masters", "system:authenticated"])
    tokens.save()
    return token


def run_event_loop(main) -> int:
    """Run the server's event loop: uvloop when it is installed (its TLS transport and loop are
    C: ~15-20 % less server CPU per request, measured with the API bench), else asyncio's.
    ``CLUSTERCTL_EVENT_LOOP=asyncio`` forces asyncio's loop."""
    # a native crash (a C extension, the event loop) then leaves every thread's stack in the
    # server's log (journal), not just "exited -11"
    faulthandler.enable()
    if os.environ.get("CLUSTERCTL_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def load_component(spec: str):
    module, _, func = spec.partition(":")
    if not module or not func:
        raise UsageError(f"component {spec!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module), func)


async def run(cfg: ControlPlaneConfig, *, components: list | None = None, ready: asyncio.Event | None = None) -> int:
    from clusterctl.api.server import ApiServer
    specs = components if components is not None else DEFAULT_COMPONENTS
    loaded = [load_component(s) if isinstance(s, str) else s for s in specs]
    token = admin_token(cfg)
    server = ApiServer(cfg, extra_components=[])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP (reload tokens) may come while the server is still starting: its default action
    # would end the process, so take it from the first moment and replay it once started.
    hup_during_start = []
    loop.add_signal_handler(signal.SIGHUP, hup_during_start.append, True)
    try:
        await server.start()
    except BaseException:
        await server.stop()   # what was opened (the store's connections, the listener) is closed before exiting
        raise
    try:
        loop.add_signal_handler(signal.SIGHUP, server.ctx.authenticator.reload)
        if hup_during_start:
            server.ctx.authenticator.reload()
        kubeconfig = write_admin_kubeconfig(cfg, token, port=server.port)
        server.ctx.url = server.url
        server.ctx.kubeconfig = kubeconfig
        for comp in loaded:
            server.extra_components.append(comp)
            server._component_tasks.append(asyncio.create_task(server._run_component(comp)))
        logging.getLogger("clusterctl.api").info("API server listening on %s (kubeconfig %s)", server.url, kubeconfig)
        print(f"clusterctl control-plane: serving {server.url}; kubeconfig {kubeconfig}", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await server.stop()
    return 0


def tune_allocator() -> None:
    """Keep large buffers (LIST bodies, TLS records) out of the heap so RSS falls after them.

    glibc raises its mmap threshold dynamically after a large free, after which multi-megabyte
    response buffers come from the brk heap and the server's RSS never shrinks again; a fixed
    threshold keeps them mmapped (returned on free).
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 1024)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, (args.log_level or "INFO").upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.action == "init":
        store: dict = {"backend": args.store_backend}
        if args.store_backend == "etcd":
            if not args.etcd_endpoint:
                raise UsageError("--store-backend etcd needs --etcd-endpoint URL")
            store["endpoints"] = args.etcd_endpoint
        path, cfg, _ = init_data_dir(Path(args.data_dir), port=args.port, bind_address=args.bind_address,
                                     tls=not args.no_tls, tls_names=args.tls_name, store=store, force=args.force)
        print(f"wrote {path}\nkubeconfig: {cfg.path(cfg.kubeconfig)}\nrun: clusterctl control-plane --config {path}")
        return 0
    if not args.config:
        raise UsageError("clusterctl control-plane: --config FILE is required (or `init --data-dir D` to make one)")
    cfg = cfgmod.load(args.config)
    if args.action == "node-token":
        tokens = TokenFile.load(cfg.path(cfg.tokens_file))
        token = tokens.add_node(args.node)
        tokens.save()
        print(token)
        return 0
    tune_allocator()
    return run_event_loop(run(cfg, components=cfg.components))
