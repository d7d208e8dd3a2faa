"""Hollow nodes: simulated nodes that register, heartbeat and report pods Running without running them.

``hollow.HollowCluster`` runs N of them in one process (kubemark/KWOK-style) for tests and
benchmarks; ``cli`` is ``clusterctl sim nodes N``.
"""
