"""Pod IP leases: round-robin, idempotent per uid, persisted, reused only after the others."""

from __future__ import annotations

import pytest

from node_runtime.network.ipam import AddressesExhausted, PodIPAM
from node_runtime.network.iproute import NetworkError


def test_addresses_skip_network_gateway_broadcast_and_come_back_last(tmp_path):
    ipam = PodIPAM("10.244.3.0/29", tmp_path / "ipam.json")
    assert ipam.gateway == "10.244.3.1"
    got = [ipam.allocate(f"pod-{i}") for i in range(5)]
    assert got == [f"10.244.3.{i}" for i in range(2, 7)]
    with pytest.raises(AddressesExhausted, match="no free pod IP in 10.244.3.0/29"):
        ipam.allocate("one-too-many")
    assert ipam.allocate("pod-1") == "10.244.3.3"                 # same uid, same address
    assert ipam.release("pod-1") == "10.244.3.3"
    assert ipam.allocate("pod-new") == "10.244.3.3"               # the only free one: reused safely now
    ipam.release("pod-2")
    ipam.release("pod-0")
    assert ipam.allocate("pod-later") == "10.244.3.4"             # round-robin: after the last handed out


def test_leases_survive_a_restart_and_a_changed_cidr_is_refused(tmp_path):
    ipam = PodIPAM("10.244.3.0/24", tmp_path / "ipam.json")
    a = ipam.allocate("a")
    again = PodIPAM("10.244.3.0/24", tmp_path / "ipam.json")
    assert again.allocate("a") == a and again.allocate("b") != a
    with pytest.raises(NetworkError, match="pod CIDR changed while pods are running"):
        PodIPAM("10.244.4.0/24", tmp_path / "ipam.json")
    again.release("a")
    again.release("b")
    assert PodIPAM("10.244.4.0/24", tmp_path / "ipam.json").allocate("c") == "10.244.4.2"

