"""Errors of the local lab. Each message is one line that says what to do or which host failed."""

from __future__ import annotations

from clusterctl.errors import ClusterctlError


class LabError(ClusterctlError):
    """The lab could not do what was asked (message names the host or the missing piece)."""


class PrerequisiteMissing(LabError):
    """The machine cannot host a lab: not root, or a needed tool is not installed."""


class HostNotFound(LabError):
    """The named host is not part of this lab (or the lab is not up)."""


class HostBootFailed(LabError):
    """A host's init exited or its sshd did not answer in time (message quotes its console)."""


class SlotsExhausted(LabError):
    """Every lab slot (and so every 10.200.k.0/24 subnet) on this machine is taken."""
