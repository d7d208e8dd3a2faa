"""clusterctl: from an Ansible inventory to a running, self-healing cluster.

The package holds the control plane (API server, store, scheduler, controllers), the API client
library, the command line, the SSH provisioner, the local lab and the terminal dashboard.
The node agent lives in the sibling package ``node_runtime``.
"""

__version__ = "0.1.0"

#: The Kubernetes API level the server implements (what `/version` reports as major/minor).
KUBE_API_MAJOR = "1"
KUBE_API_MINOR = "32"
