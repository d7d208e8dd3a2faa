"""node_runtime: the agent every worker runs (`node-runtime --config FILE`).

It registers its Node, renews its Lease, runs the pods bound to it as real containers from OCI
images (``images``, ``runtime``), gives each pod its own network namespace (``network``), serves
Services on the node (``proxy``) and reports usage. It is an API client like every other
component: it never touches the store.
"""

__version__ = "0.1.0"
