"""``clusterctl upgrade -i INV [--to VERSION] [--check]``: the command entry (see ``cli``)."""

from __future__ import annotations

from clusterctl.bootstrap.cli import upgrade_main


def main(argv: list[str]) -> int:
    return upgrade_main(argv)
