"""Errors of the bootstrap commands: one family under ``ClusterctlError``."""

from __future__ import annotations

from clusterctl.errors import ClusterctlError


class BootstrapError(ClusterctlError):
    """Bootstrapping, upgrading or removing a node failed."""


class WheelhouseError(BootstrapError):
    """The product wheelhouse could not be built on the controller."""
