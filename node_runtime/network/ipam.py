"""Pod IP address management for one node: addresses from the node's pod CIDR, one per pod uid.

The first host address of the CIDR is the bridge (the pods' gateway); the others go to pods.
Allocation is round-robin from the last address handed out (like CNI's host-local), so an
address freed by a deleted pod is reused only after the rest of the range, which gives
neighbours' ARP caches and conntrack time to forget it. Leases are kept in a JSON file written
atomically, so an agent restart keeps every running pod's address; the same uid always gets
its existing lease back (setup is idempotent).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from node_runtime.network.iproute import NetworkError


class AddressesExhausted(NetworkError):
    """Every address of the node's pod CIDR is leased."""


class PodIPAM:
    def __init__(self, cidr: str, state_file: Path):
        try:
            self.network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise NetworkError(f"pod CIDR {cidr!r} is not a network: {exc}") from exc
        if self.network.version != 4 or self.network.prefixlen > 29:
            raise NetworkError(f"pod CIDR {cidr} must be IPv4 and at least a /29")
        self.gateway = str(self.network.network_address + 1)
        self.state_file = state_file
        self.leases: dict[str, str] = {}
        self.last = int(self.network.network_address + 1)
        self._load()

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def _load(self) -> None:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise NetworkError(f"cannot read pod IP leases {self.state_file}: {exc}") from exc
        if data.get("cidr") != str(self.network):
            if data.get("leases"):
                raise NetworkError(f"pod IP leases in {self.state_file} are for {data.get('cidr')}, not {self.network}: "
                                   "the node's pod CIDR changed while pods are running on it")
            return
        self.leases = dict(data.get("leases") or {})
        self.last = int(ipaddress.ip_address(data.get("last") or self.gateway))

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cidr": str(self.network), "last": str(ipaddress.ip_address(self.last)),
                                   "leases": self.leases}, indent=1))
        os.replace(tmp, self.state_file)

    def allocate(self, owner: str) -> str:
        if owner in self.leases:
            return self.leases[owner]
        used = set(self.leases.values())
        first = int(self.network.network_address) + 2
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        start = self.last + 1
        for i in range(size):
            candidate = first + (start - first + i) % size
            addr = str(ipaddress.ip_address(candidate))
            if addr not in used:
                self.leases[owner] = addr
                self.last = candidate
                self._save()
                return addr
        raise AddressesExhausted(f"no free pod IP in {self.network}: {len(self.leases)} leased")

    def release(self, owner: str) -> str | None:
        addr = self.leases.pop(owner, None)
        if addr is not None:
            self._save()
        return addr

    def owner_of(self, addr: str) -> str | None:
        return next((o for o, a in self.leases.items() if a == addr), None)
