"""``playbooks/templates/node-kubeconfig.yaml.j2``: each node's agents spread over the API servers.

Rendered as the bootstrap play renders it (the provisioner's inventory, variables and Templar),
then read back with the client's kubeconfig loader the agent uses: every node lists every API
server in ``clusterctl.io/servers`` (the agent fails over in that order), but not all in the same
order. A control-plane host that also runs an agent prefers its own API server; any other node
starts at its position in ``groups['workers']`` mod the number of API servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterctl.client.kubeconfig import load_kubeconfig
from clusterctl.provision.inventory import load_inventory
from clusterctl.provision.templating import Templar
from clusterctl.provision.variables import VariableManager

TEMPLATE = Path(__file__).resolve().parents[2] / "playbooks" / "templates" / "node-kubeconfig.yaml.j2"


def render_node_kubeconfigs(tmp_path: Path, inventory: str) -> dict[str, Path]:
    """Each worker's rendered node kubeconfig, written to a file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "inventory.ini").write_text(inventory)
    variables = VariableManager(load_inventory(str(tmp_path / "inventory.ini")))
    groups = variables.inventory.groups_dict()
    workers, first = groups["workers"], groups["control_plane"][0]
    variables.set_fact(first, "clusterctl_node_tokens", {w: f"token-of-{w}" for w in workers})
    out = {}
    for worker in workers:
        out[worker] = tmp_path / f"{worker}.kubeconfig"
        out[worker].write_text(Templar(variables.get_vars(worker)).render_file(TEMPLATE))
    return out


HA = """
[control_plane]
c1 ansible_host=10.0.0.1
c2 ansible_host=10.0.0.2 node_ip=10.1.0.2
c3 ansible_host=10.0.0.3

[workers]
w1 ansible_host=10.0.0.11
w2 ansible_host=10.0.0.12
c3
w3 ansible_host=10.0.0.13
w4 ansible_host=10.0.0.14
w5 ansible_host=10.0.0.15

[all:vars]
api_port=6443
"""
C1, C2, C3 = "https://10.0.0.1:6443", "https://10.1.0.2:6443", "https://10.0.0.3:6443"


def test_three_api_servers_are_spread_over_the_nodes(tmp_path: Path):
    kubeconfigs = render_node_kubeconfigs(tmp_path, HA)
    orders = {node: load_kubeconfig(path).all_servers() for node, path in kubeconfigs.items()}
    assert orders == {
        "w1": [C1, C2, C3],   # workers[0] -> 0
        "w2": [C2, C3, C1],   # workers[1] -> 1
        "c3": [C3, C1, C2],   # a control-plane host prefers its own API server (node_ip where set)
        "w3": [C1, C2, C3],   # workers[3] -> 3 mod 3 = 0
        "w4": [C2, C3, C1],
        "w5": [C3, C1, C2],
    }
    for node, path in kubeconfigs.items():
        creds = load_kubeconfig(path)
        assert creds.server == orders[node][0]          # kubectl on the node uses the preferred one too
        assert creds.token == f"token-of-{node}"
    first_choices = [order[0] for order in orders.values()]
    assert {url: first_choices.count(url) for url in (C1, C2, C3)} == {C1: 2, C2: 2, C3: 2}


def test_rendering_again_gives_the_same_file(tmp_path: Path):
    """A bootstrap rerun must change nothing (and restart no agent)."""
    first = {node: path.read_text() for node, path in render_node_kubeconfigs(tmp_path / "a", HA).items()}
    again = {node: path.read_text() for node, path in render_node_kubeconfigs(tmp_path / "b", HA).items()}
    assert first == again


@pytest.mark.parametrize("workers", ["w1 ansible_host=10.0.0.11\nw2 ansible_host=10.0.0.12", "c1\nw1 ansible_host=10.0.0.11"])
def test_one_api_server_is_the_only_server_and_no_extension(tmp_path: Path, workers: str):
    kubeconfigs = render_node_kubeconfigs(
        tmp_path, f"[control_plane]\nc1 ansible_host=10.0.0.1\n\n[workers]\n{workers}\n\n[all:vars]\napi_port=6443\n")
    for path in kubeconfigs.values():
        assert load_kubeconfig(path).all_servers() == ["https://10.0.0.1:6443"]
        assert "clusterctl.io/servers" not in path.read_text()
