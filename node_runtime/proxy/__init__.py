"""The Service proxy of a node: ClusterIPs and NodePorts forwarded to ready pods.

``table`` turns Services + Pods into frontends (pure); ``forwarder`` moves bytes between a
client and a chosen backend (by default in ``ccl-pump``, the agent's C child process, see
``compiled_pump``; else splice(2) under one Python epoll thread); ``addresses`` keeps
ClusterIPs on a dummy interface; ``service_proxy`` watches the API and keeps them in step.
"""

from node_runtime.proxy.service_proxy import ServiceProxy

__all__ = ["ServiceProxy"]
