"""The controllers of clusterctl: level-triggered reconcilers that keep the cluster in its desired state.

One module per controller (``replicaset``, ``deployment``, ``endpoints``, ``gc``, ``nodeipam``,
``nodelifecycle``, ``daemonset``, ``job``, ``statefulset``, ``cronjob``, ``hpa``), each a
``clusterctl.client.controller.Controller`` subclass with ``async def reconcile(key)``;
``manager`` runs them all behind one leader-election Lease.
"""
