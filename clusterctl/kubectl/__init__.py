"""kubectl-style verbs for ``clusterctl`` (issue 7): thin commands over ``clusterctl.client``.

One module per verb family; ``cli.py`` builds the argparse tree and dispatches. Everything a
verb shows or validates comes from the API server (server-side Tables, validation, dry-run,
strategic merge patches); the verbs only address, format and wait.
"""
