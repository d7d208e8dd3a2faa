"""DNS messages on the wire (RFC 1035), the small subset an authoritative server needs.

We parse a query's header and its first question, and build responses that echo the question
and carry A records. Parsing is defensive (a malformed packet raises ``DnsFormatError`` and gets
FORMERR, never an exception out of the server); names are compared lower-cased without the root dot.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from node_runtime.errors import NodeRuntimeError

TYPE_A, TYPE_AAAA, TYPE_ANY = 1, 28, 255
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
_HEADER = struct.Struct("!HHHHHH")


class DnsFormatError(NodeRuntimeError):
    """A DNS packet could not be parsed."""


@dataclass(frozen=True)
class Query:
    id: int
    flags: int
    name: str                  # lower-case, no trailing dot
    qtype: int
    qclass: int
    question: bytes            # the raw question section, echoed in the answer

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels, jumps, end = [], 0, None
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the end of the packet")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data) or jumps > 16:
                raise DnsFormatError("bad compression pointer")
            end = offset + 2 if end is None else end
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            continue
        if length == 0:
            return ".".join(labels).lower(), (end if end is not None else offset + 1)
        labels.append(data[offset + 1: offset + 1 + length].decode("ascii", errors="replace"))
        offset += 1 + length


def parse_query(data: bytes) -> Query:
    if len(data) < _HEADER.size:
        raise DnsFormatError("packet shorter than a DNS header")
    qid, flags, qd, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & 0x8000 or qd < 1:
        raise DnsFormatError("not a query with a question")
    name, off = _read_name(data, _HEADER.size)
    if off + 4 > len(data):
        raise DnsFormatError("question truncated")
    qtype, qclass = struct.unpack_from("!HH", data, off)
    return Query(qid, flags, name, qtype, qclass, data[_HEADER.size: off + 4])


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def build_query(name: str, qtype: int = TYPE_A, qid: int = 1) -> bytes:
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def build_response(q: Query, rcode: int, addresses: list[str] = (), *, ttl: int = 5, authoritative: bool = True) -> bytes:
    flags = 0x8000 | (q.opcode << 11) | (0x0400 if authoritative else 0) | (q.flags & 0x0100) | rcode
    answers = b""
    for a in addresses:
        answers += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4) + ipaddress.IPv4Address(a).packed
    return _HEADER.pack(q.id, flags, 1, len(addresses), 0, 0) + q.question + answers


def parse_response(data: bytes) -> tuple[int, list[str]]:
    """``(rcode, A addresses)`` of a response (for clients and tests)."""
    qid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(data)
    off = _HEADER.size
    for _ in range(qd):
        _, off = _read_name(data, off)
        off += 4
    out = []
    for _ in range(an):
        _, off = _read_name(data, off)
        rtype, _rclass, _ttl, rdlen = struct.unpack_from("!HHIH", data, off)
        off += 10
        if rtype == TYPE_A and rdlen == 4:
            out.append(str(ipaddress.IPv4Address(data[off: off + 4])))
        off += rdlen
    return flags & 0xF, out
