"""Cluster DNS: ``<svc>.<ns>.svc.<domain>`` answered from the API's Services and Pods.

``message`` is the wire format (just what an authoritative A/AAAA server needs), ``records``
the zone computed from the objects (pure), ``server`` the UDP+TCP server with optional,
explicitly configured upstream forwarding (off by default: unknown names are REFUSED).
"""
