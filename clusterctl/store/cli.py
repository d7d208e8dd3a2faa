"""``clusterctl store status|compact|backup FILE|restore FILE --data-dir DIR``.

Offline administration of a tinydb store's data directory (``admin.py`` does the work; a
running API server calls the same functions). ``status`` and ``compact`` also take
``--etcd URL[,URL...] [--prefix P] [--etcd-ca-file F --etcd-cert-file F --etcd-key-file F]``
for the etcd backend (revision, key count; history compaction). Output is a few ``name: value``
lines, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from clusterctl.store import admin


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterctl store",
                                     description="inspect, compact, back up and restore a tinydb cluster store")
    sub = parser.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser, etcd: bool = False) -> None:
        if etcd:
            where = p.add_mutually_exclusive_group(required=True)
            where.add_argument("--data-dir", help="the tinydb store's data directory")
            where.add_argument("--etcd", metavar="URL[,URL...]", help="the etcd backend's endpoints")
            p.add_argument("--prefix", default="", help="the etcd key prefix of the cluster's keys")
            p.add_argument("--etcd-ca-file", help="the etcd CA (verifies etcd's certificate)")
            p.add_argument("--etcd-cert-file", help="a client certificate etcd trusts (bootstrap: "
                                                    "/var/lib/clusterctl/etcd-pki/apiserver-etcd-client.crt)")
            p.add_argument("--etcd-key-file", help="its private key")
        else:
            p.add_argument("--data-dir", required=True, help="the store's data directory")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    common(sub.add_parser("status", help="revision, key count, log size, snapshot age"), etcd=True)
    common(sub.add_parser("compact", help="fold the write-ahead log into the snapshot "
                                          "(etcd: compact the whole keyspace's history)"), etcd=True)
    backup = sub.add_parser("backup", help="write a consistent copy (snapshot + log folded) to FILE")
    backup.add_argument("file")
    common(backup)
    restore = sub.add_parser("restore", help="replace the store's contents with a backup FILE")
    restore.add_argument("file")
    restore.add_argument("--force", action="store_true", help="replace a non-empty data directory")
    common(restore)
    return parser


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    for name, value in result.items():
        print(f"{name}: {'-' if value is None else value}")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    if getattr(args, "etcd", None):
        tls = {"ca_file": args.etcd_ca_file, "cert_file": args.etcd_cert_file, "key_file": args.etcd_key_file}
        result = asyncio.run(_etcd(args.action, args.etcd.split(","), args.prefix, tls))
    elif args.action == "status":
        result = admin.status(args.data_dir)
    elif args.action == "compact":
        result = admin.compact(args.data_dir)
    elif args.action == "backup":
        result = admin.backup(args.data_dir, args.file)
    else:
        result = admin.restore(args.file, args.data_dir, force=args.force)
    _print(result, args.json)
    return 0


async def _etcd(action: str, endpoints: list[str], prefix: str, tls: dict) -> dict:
    from clusterctl.store.etcd_store import EtcdStore

    store = EtcdStore(endpoints, prefix=prefix, **tls)
    await store.start()
    try:
        if action == "compact":
            return {"compacted_to": await store.compact()}
        return {**store.status(), "keys": await store.count("/")}
    finally:
        await store.close()
