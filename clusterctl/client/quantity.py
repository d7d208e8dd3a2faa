"""Kubernetes resource quantities (``500m``, ``2``, ``128Mi``, ``1G``, ``1e3``) as numbers.

CPU is counted in millicores and memory in bytes, both rounded up as Kubernetes does, so a
scheduler, an autoscaler and a node agent all agree on what ``requests`` mean.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: str | int | float) -> Decimal:
    """A quantity as a Decimal in base units; ``ValueError`` names a malformed one."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = str(value).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):
            number, mult = text[: -len(suffix)], _SUFFIXES[suffix]
            break
    else:
        number, mult = text, _SUFFIXES[""]
    try:
        return Decimal(number) * mult
    except InvalidOperation:
        raise ValueError(f"invalid quantity {value!r}") from None


@functools.lru_cache(maxsize=4096)
def cpu_millis(value: str | int | float | None) -> int:
    """CPU quantity → millicores (rounded up). Cached: a cluster uses few distinct quantities."""
    if value is None:
        return 0
    return int(math.ceil(parse_quantity(value) * 1000))


@functools.lru_cache(maxsize=4096)
def memory_bytes(value: str | int | float | None) -> int:
    """Memory (or any byte) quantity → bytes (rounded up)."""
    if value is None:
        return 0
    return int(math.ceil(parse_quantity(value)))


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(n: int) -> str:
    for suffix, size in (("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)
