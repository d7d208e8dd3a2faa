"""`node-runtime --config FILE`: config errors exit 2 with the reason; the network choice is parsed."""

from __future__ import annotations

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
