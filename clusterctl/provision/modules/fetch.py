"""``slurp`` and ``fetch``: bring a file from the host to the controller.

``slurp`` returns the bytes base64-encoded in the result (Ansible's shape). ``fetch`` stores the
file under ``dest/<inventory_hostname>/<src path>`` (or exactly at ``dest`` with ``flat: yes``),
downloading over SFTP only when the local copy's sha1 differs from the remote one, so a second run
is ``changed: False``. Relative ``dest`` is resolved against ``ctx.fetch_root``. Check mode
reports what would be fetched and writes nothing locally.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.remote_file import probe_one, read_file
from clusterctl.provision.modules.results import failed, ok


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_slurp(args: dict) -> None:
    if args.get("src") is None and args.get("path") is None:
        raise ModuleArgError("slurp: missing required arguments: src")


def validate_fetch(args: dict) -> None:
    for key in ("src", "dest"):
        if args.get(key) is None:
            raise ModuleArgError(f"fetch: missing required arguments: {key}")


async def run_slurp(ctx: ModuleContext, args: dict) -> dict:
    src = str(args.get("src") or args.get("path"))
    cur = await probe_one(ctx, src, checksum=None, follow=True)
    if not cur.exists:
        return failed(f"file not found: {src}")
    if cur.state == "directory":
        return failed(f"source is a directory and must be a file: {src}")
    data = await read_file(ctx, src)
    return ok(False, content=base64.b64encode(data).decode(), encoding="base64", source=src)


def fetch_destination(src: str, dest: str, host: str, flat: bool, root: Path | None) -> Path:
    """Where Ansible's fetch puts ``src`` of ``host``: ``dest/host/src`` or, flat, ``dest`` itself."""
    base = Path(dest).expanduser()
    if not base.is_absolute() and root is not None:
        base = root / base
    if flat:
        if dest.endswith("/"):
            return base / os.path.basename(src)
        return base
    return base / host / src.lstrip("/")


async def run_fetch(ctx: ModuleContext, args: dict) -> dict:
    src = str(args["src"])
    dest = fetch_destination(src, str(args["dest"]), ctx.host, _bool(args.get("flat")), ctx.fetch_root)
    cur = await probe_one(ctx, src, checksum="sha1", follow=True)
    if not cur.exists or cur.state != "file":
        msg = f"the remote file does not exist, not transferring, ignored" if not cur.exists else f"remote file is a {cur.state}, fetch cannot work on directories"
        if _bool(args.get("fail_on_missing"), True) or cur.exists:
            return failed(msg, file=src)
        return ok(False, msg=msg, file=src)
    local_sum = hashlib.sha1(dest.read_bytes()).hexdigest() if dest.is_file() else None
    result = dict(dest=str(dest), file=src, remote_checksum=cur.checksum, checksum=cur.checksum)
    if local_sum == cur.checksum:
        return ok(False, **result)
    if ctx.check_mode:
        return ok(True, **result)
    data = await read_file(ctx, src)
    got = hashlib.sha1(data).hexdigest()
    if _bool(args.get("validate_checksum"), True) and got != cur.checksum:
        return failed(f"checksum mismatch fetching {src}: remote {cur.checksum}, received {got}", **result)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.clusterctl-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return ok(True, md5sum=hashlib.md5(data).hexdigest(), **result)
