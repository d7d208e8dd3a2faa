"""`node-runtime --config FILE`: config errors exit 2 with the reason; the network choice is parsed."""

from __future__ import annotations

import os
import subprocess
import sys

from node_runtime.config import AgentConfig


def run_cli(tmp_path, body: str):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(body)
    return subprocess.run([sys.executable, "-m", "node_runtime.cli", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)


def test_network_settings_are_parsed(tmp_path):
    cfg = AgentConfig.from_dict({"node_name": "n1", "data_dir": str(tmp_path), "network": "bridge",
                                 "cluster_cidr": "10.250.0.0/16", "service_cidr": "10.97.0.0/16"})
    assert (cfg.network, cfg.cluster_cidr, cfg.service_cidr) == ("bridge", "10.250.0.0/16", "10.97.0.0/16")
    assert AgentConfig.from_dict({"node_name": "n1", "data_dir": str(tmp_path)}).network == "loopback"


def test_unknown_network_is_refused(tmp_path):
    out = run_cli(tmp_path, f"node_name: n1\ndata_dir: {tmp_path}\nserver: https://127.0.0.1:1\ntoken: x\nnetwork: overlay\n")
    assert out.returncode == 2
    assert "unknown network 'overlay'" in out.stderr


def test_unknown_config_key_is_refused(tmp_path):
    out = run_cli(tmp_path, f"node_name: n1\ndata_dir: {tmp_path}\nnetwrok: bridge\n")
    assert out.returncode == 2
    assert "netwrok" in out.stderr


def test_api_connections_bound_the_agent_client(tmp_path):
    from node_runtime.agent import make_client
    cfg = AgentConfig.from_dict({"node_name": "n1", "data_dir": str(tmp_path), "server": "https://127.0.0.1:1", "token": "x"})
    assert cfg.api_connections == 16 and make_client(cfg)._max_connections == 16
    out = run_cli(tmp_path, f"node_name: n1\ndata_dir: {tmp_path}\nserver: https://127.0.0.1:1\ntoken: x\napi_connections: 4\n")
    assert out.returncode == 2 and "api_connections must be an integer >= 8" in out.stderr


def test_tls_read_buffers_are_small_in_the_agent():
    """asyncio's 256 KiB zero-filled read buffer per TLS connection was ~10 MB of agent RSS in a burst."""
    probe = ("import asyncio.sslproto as s, node_runtime.cli as c; c._shrink_tls_read_buffers(); "
             "p = s.SSLProtocol(asyncio.get_event_loop_policy().new_event_loop(), asyncio.Protocol(), None, None); "
             "print(s.SSLProtocol.max_size, len(p._ssl_buffer))")
    out = subprocess.run([sys.executable, "-c", "import asyncio; " + probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["32768", "32768"], out.stderr


def test_the_agent_does_not_map_libstdcxx():
    probe = ("import node_runtime.cli as c; c._skip_frozenlist_extension(); import node_runtime.agent, node_runtime.server; "
             "print('libstdc++' in open('/proc/self/maps').read())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "FROZENLIST_NO_EXTENSIONS"})
    assert out.stdout.strip() == "False", out.stderr
