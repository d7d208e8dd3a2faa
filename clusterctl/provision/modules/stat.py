"""``stat``: report what a path on the host is (Ansible's ``stat`` dict), never changing anything.

One probe command; the checksum is sha1 unless ``checksum_algorithm`` says otherwise, and is left
out with ``get_checksum: no``. ``follow: yes`` reports a symlink's target.
"""

from __future__ import annotations

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.remote_file import CHECKSUM_TOOLS, probe_one
from clusterctl.provision.modules.results import ok


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_stat(args: dict) -> None:
    if args.get("path") is None and args.get("dest") is None and args.get("name") is None:
        raise ModuleArgError("stat: missing required arguments: path")
    algo = args.get("checksum_algorithm", args.get("checksum_algo"))
    if algo is not None and "{{" not in str(algo) and algo not in CHECKSUM_TOOLS:
        raise ModuleArgError(f"stat: checksum_algorithm must be one of {', '.join(CHECKSUM_TOOLS)}, got {algo}")


async def run_stat(ctx: ModuleContext, args: dict) -> dict:
    path = str(args.get("path") or args.get("dest") or args.get("name"))
    algo = args.get("checksum_algorithm", args.get("checksum_algo")) or "sha1"
    want_sum = _bool(args.get("get_checksum"), True)
    cur = await probe_one(ctx, path, checksum=algo if want_sum else None, follow=_bool(args.get("follow")))
    return ok(False, stat=cur.as_ansible_stat())
