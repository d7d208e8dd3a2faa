"""``clusterctl image push SRC NAME:TAG``: build a single-layer image and push it to a registry."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex

from node_runtime.images.build import ImageSpec, build_image, push_image
from node_runtime.images.registry import RegistryClient, RegistryPolicy


def _argv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    value = value.strip()
    if value.startswith("["):
        return list(json.loads(value))
    return shlex.split(value)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="clusterctl image",
        description="Build a single-layer OCI image from a directory or tarball and push it.",
        epilog="example: clusterctl image push ./rootfs 127.0.0.1:5055/web:v1 --cmd '/bin/httpd -f -p 8080' --port 8080",
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("push", help="build SRC (directory or tar[.gz]) and push it as NAME:TAG")
    p.add_argument("src")
    p.add_argument("name")
    p.add_argument("--entrypoint", help="JSON list or a shell-like string")
    p.add_argument("--cmd", help="JSON list or a shell-like string")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--port", action="append", default=[], help="exposed port, e.g. 8080 or 53/udp")
    p.add_argument("--workdir")
    p.add_argument("--user")
    p.add_argument("--insecure", action="append", default=[], metavar="REGISTRY", help="allow plain HTTP to REGISTRY")
    args = parser.parse_args(argv)
    spec = ImageSpec(entrypoint=_argv_list(args.entrypoint), cmd=_argv_list(args.cmd),
                     working_dir=args.workdir, exposed_ports=args.port, user=args.user)
    spec.env = spec.env + args.env
    built = build_image(args.src, spec)

    async def run() -> str:
        async with RegistryClient(RegistryPolicy.from_config(insecure=args.insecure)) as client:
            return await push_image(built, args.name, client)

    pinned = asyncio.run(run())
    print(f"pushed {args.name} ({pinned.split('@')[1]}, layer {built.layer_digest[:19]}, {len(built.layer_gz)} bytes)")
    return 0
