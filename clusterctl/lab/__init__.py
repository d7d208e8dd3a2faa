"""The local lab: N throwaway SSH hosts on this machine (see ``lab`` for the lifecycle).

Each host is a network namespace on a per-lab bridge, with private copy-on-write mounts, its own
hostname, a small init as PID 1 and its own sshd. Provisioners get ``inventory.ini`` and a
``known_hosts`` with the hosts' real keys; tests get faults (stop/start, cut/heal).
"""

from clusterctl.lab.errors import HostBootFailed, HostNotFound, LabError, PrerequisiteMissing
from clusterctl.lab.lab import Lab, LabHost
from clusterctl.lab.prerequisites import check_prerequisites

__all__ = ["Lab", "LabHost", "LabError", "PrerequisiteMissing", "HostNotFound", "HostBootFailed", "check_prerequisites"]
