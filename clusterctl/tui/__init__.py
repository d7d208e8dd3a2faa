"""``clusterctl tui``: the cluster live in the terminal (Textual).

- ``_source``: informers behind every view (watch-driven, never polling), connection state, reconnect + re-list;
- ``_kinds``: the resource views (names, aliases, columns, rows, colours) built on ``api.tables``;
- ``_table``: the resource table widget (incremental updates, filter, label selector, namespace);
- ``_overview``: the Overview (nodes Ready, pods by phase, CPU/memory bars, recent warnings);
- ``_text``: describe / YAML / logs / scheduler-explanation screens; ``_dialogs``: command bar,
  filter, scale, delete confirmation, help; ``_feed``: the provisioning/upgrade feed view;
- ``_actions``: what keys do to the cluster (scale, delete, cordon, logs) through ``ApiClient``;
- ``app``: ``ClusterApp`` wiring keys to views; ``cli``: ``main(argv)``.
"""
