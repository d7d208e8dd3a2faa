"""Run ``clusterctl control-plane`` with ``clusterctl.api.node_proxy`` registered.

Until the lead wires ``node_proxy.register(routes)`` into ``clusterctl.api.server.make_app``, the
node runtime tests start the real control plane through this wrapper (same CLI, same code path,
plus the two registration lines). Usage: ``python cp_with_proxy.py --config FILE``.
"""

import sys

import clusterctl.api.server as server
from clusterctl.api import node_proxy

_make_app = server.make_app


def make_app(ctx):
    app, routes = _make_app(ctx)
    node_proxy.register(routes)
    return app, routes


server.make_app = make_app

if __name__ == "__main__":
    from clusterctl.cli import main
    sys.exit(main(["control-plane", *sys.argv[1:]]))
