"""Slot names fit Linux's limits and a slot is skipped when anything on the machine uses it."""

from __future__ import annotations

import ipaddress

from clusterctl.lab.slots import LAST_SLOT, MAX_HOSTS, MachineNetwork, SlotNames


def test_names_fit_in_an_interface_name() -> None:
    names = SlotNames(LAST_SLOT)
    for name in (names.bridge, names.veth(MAX_HOSTS)):
        assert len(name) <= 15, name
    assert names.ip(MAX_HOSTS) == f"10.200.{LAST_SLOT}.254"
    assert names.ip(1) == f"10.200.{LAST_SLOT}.11"


def test_a_slot_owns_only_its_own_names() -> None:
    one, twelve = SlotNames(1), SlotNames(12)
    assert one.owns_link("ccl1br") and one.owns_link("ccl1v7") and one.owns_netns("ccl1-h7")
    assert not one.owns_link("ccl12v7") and not one.owns_netns("ccl12-h7") and not one.owns_link("eth0")
    assert twelve.owns_netns("ccl12-h7")


def test_a_slot_in_use_is_recognised() -> None:
    def network(links=(), netns=(), routes=()) -> MachineNetwork:
        return MachineNetwork(frozenset(links), frozenset(netns), tuple(ipaddress.IPv4Network(r) for r in routes))

    names = SlotNames(7)
    assert not network(links={"eth0", "ccl17br"}, routes=["10.0.0.0/8", "10.200.8.0/24"]).uses(names)
    assert network(links={"ccl7v3"}).uses(names)
    assert network(netns={"ccl7-h1"}).uses(names)
    assert network(routes=["10.200.7.0/24"]).uses(names)
    assert network(routes=["10.200.0.0/16"]).uses(names)
