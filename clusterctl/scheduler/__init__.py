"""The scheduler: assigns a node to every pod that has none.

- ``framework``: plugin Protocols, ``Status``, ``PodInfo``/``NodeInfo``; ``plugins/``: one module per plugin;
- ``cycle``: one pure scheduling decision (filter a sample of nodes, score, pick) and the
  "0/N nodes are available: ..." message;
- ``cache``: NodeInfo per node with bound and assumed pods; ``queue``: active/backoff/unschedulable queues;
- ``preemption``: evict lower-priority pods for a pod that fits nowhere;
- ``explain``: the per-node filter + score table; ``scheduler``: the running component (``run_scheduler``).
"""
