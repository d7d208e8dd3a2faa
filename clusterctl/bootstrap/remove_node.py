"""``clusterctl remove-node -i INV HOST``: the command entry (see ``cli``)."""

from __future__ import annotations

from clusterctl.bootstrap.cli import remove_node_main


def main(argv: list[str]) -> int:
    return remove_node_main(argv)
