"""The scheduler: assigns a node to every pod that has none.

- ``framework``: plugin Protocols, ``Status``, ``PodInfo``/``NodeInfo``; ``plugins/``: one module per plugin;
- ``cycle``: one pure scheduling decision (filter a sample of nodes, score, pick) and the
  "0/N nodes are available: ..." message;
- ``cache``: NodeInfo per node with bound and assumed pods; ``queue``: active/backoff/unschedulable queues;
- ``preemption``: evict lower-priority pods for a pod that fits nowhere;
- ``explain``: the per-node filter + score table (``explain_pod`` for ``clusterctl explain-schedule``);
- ``scheduler``: the running scheduler (``run_scheduler``) and its control-plane components
  (``scheduler_component`` in-process, ``scheduler_process_component`` as a supervised child);
- ``cli``: the scheduler as a standalone process (``python -m clusterctl.scheduler.cli``).
"""
