"""Host-gw routes and the overlap check (pure functions over Node objects and `ip -j route` output)."""

from __future__ import annotations

from node_runtime.network.routes import desired_routes, find_overlaps


def test_host_gw_routes_go_to_other_nodes_not_to_ourselves_or_nodes_sharing_our_namespace():
    def node(name, cidr, ip):
        return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
    nodes = [node("a", "10.244.0.0/24", "10.200.1.11"), node("b", "10.244.1.0/24", "10.200.1.12"),
             node("c", None, "10.200.1.13"), node("d", "10.244.3.0/24", "127.0.0.1")]
    assert desired_routes(nodes, "a", {"127.0.0.1", "10.200.1.11"}) == {"10.244.1.0/24": "10.200.1.12"}
    routes = [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
              {"dst": "10.244.1.0/24", "gateway": "10.200.1.12", "dev": "eth0", "protocol": "76"},
              {"dst": "10.244.0.0/16", "type": "unreachable"},
              {"dst": "10.244.0.0/24", "dev": "ccabc", "protocol": "kernel"},
              {"dst": "10.96.0.0/24", "dev": "tun0", "protocol": "kernel"}]
    assert find_overlaps(routes, ["10.244.0.0/16", "10.96.0.0/12"], {"ccabc"}) == \
        ["10.96.0.0/12 overlaps the host route 10.96.0.0/24 dev tun0"]
