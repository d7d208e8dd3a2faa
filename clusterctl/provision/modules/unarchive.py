"""``unarchive``: unpack a tar (any compression GNU tar reads) or zip archive into a folder on the host.

Idempotent by content, not by timestamps: the archive is unpacked into a private temp folder
(under ``$TMPDIR``, never inside ``dest``, so check mode leaves even the folder's mtime alone) and
compared with ``dest`` by one ``diff -rq --no-dereference`` (types, link targets, bytes; files
that exist only in ``dest`` are left alone); only when something differs are the members copied over (``cp -a``). So a
second run, and a check-mode run, change nothing. ``src`` is a local file uploaded over SFTP
unless ``remote_src: yes``; ``creates`` skips the task when that path exists; mode/owner/group
are then applied to the archive's members where they differ.
"""

from __future__ import annotations

import shlex

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.remote_file import ProbeFailed, batches, grouped_commands, plan_attrs, probe, probe_one, upload
from clusterctl.provision.modules.results import command_failure, failed, ok

q = shlex.quote

_UNPACK = r"""set -e
A=%(archive)s; D=%(dest)s; APPLY=%(apply)s
t=$(mktemp -d "${TMPDIR:-/tmp}/.clusterctl-unarchive.XXXXXXXX")
trap 'rm -rf -- "$t"' EXIT
if [ "$(head -c 2 -- "$A")" = PK ]; then
  command -v unzip >/dev/null || { echo "unzip is not installed on the host" >&2; exit 3; }
  unzip -q -o %(extra)s "$A" -d "$t"
else
  tar -x -f "$A" -C "$t" %(extra)s
fi
cd "$t"
find . -mindepth 1 | sed 's|^\./|M |'
# one recursive comparison; keep only lines about the archive's side (what exists only in dest
# is not the archive's business): "Only in $t...", "Files $t/x and $D/x differ", type changes
out=$(LC_ALL=C diff -rq --no-dereference -- "$t" "$D" 2>&1 | grep -F -e "Only in $t" -e "$t/" || true)
[ -n "$out" ] && printf '%%s\n' "$out" | sed 's/^/D /'
if [ "$APPLY" = 1 ] && [ -n "$out" ]; then cp -a -- "$t/." "$D/"; fi
"""


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_unarchive(args: dict) -> None:
    for key in ("src", "dest"):
        if args.get(key) is None:
            raise ModuleArgError(f"unarchive: missing required arguments: {key}")


async def run_unarchive(ctx: ModuleContext, args: dict) -> dict:
    dest = str(args["dest"]).rstrip("/") or "/"
    src = str(args["src"])
    creates = args.get("creates")
    if creates:
        if (await probe_one(ctx, str(creates), checksum=None)).exists:
            return ok(False, msg=f"skipped, since {creates} exists", dest=dest, src=src)
    (dstat,) = await probe(ctx, [dest], checksum=None, follow=True)
    if dstat.state != "directory":
        return failed(f"dest '{dest}' must be an existing dir")
    uploaded = None
    if _bool(args.get("remote_src")):
        archive = src
        if not (await probe_one(ctx, src, checksum=None, follow=True)).exists:
            return failed(f"Source '{src}' does not exist")
    else:
        local = ctx.local_file("files", src)
        mk = await ctx.run("umask 077; mktemp /tmp/.clusterctl-archive.XXXXXXXX")
        if mk.rc != 0:
            return command_failure("making a temp file for the archive", mk)
        archive = uploaded = mk.stdout.strip()
        await upload(ctx, local.read_bytes(), archive)
    try:
        extra = " ".join(q(str(o)) for o in (args.get("extra_opts") or []))
        for pattern in args.get("exclude") or []:
            extra += f" --exclude={q(str(pattern))}"
        script = _UNPACK % {"archive": q(archive), "dest": q(dest), "apply": 0 if ctx.check_mode else 1, "extra": extra}
        res = await ctx.run(script)
        if res.rc != 0:
            return command_failure(f"unpacking {src} into {dest}", res)
        members = [l[2:] for l in res.stdout.splitlines() if l.startswith("M ")]
        differing = [l[2:] for l in res.stdout.splitlines() if l.startswith("D ")]
        changed = bool(differing)
        attrs_changed = await _member_attrs(ctx, dest, members, args)
        result = ok(changed or attrs_changed, dest=dest, src=src, handler="TarArchive")
        if _bool(args.get("list_files")):
            result["files"] = members
        if ctx.diff and differing:
            result["diff"] = [{"before": "", "after": "\n".join(differing) + "\n",
                               "before_header": dest, "after_header": f"{dest} (members from {src})"}]
        return result
    finally:
        if uploaded:
            await ctx.run(f"rm -f -- {q(uploaded)}")


async def _member_attrs(ctx: ModuleContext, dest: str, members: list[str], args: dict) -> bool:
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")
    if (mode is None and owner is None and group is None) or not members:
        return False
    stats = await probe(ctx, [f"{dest}/{m}" for m in members], checksum=None)
    ops: list[tuple[str, str]] = []
    for st in stats:
        if st.exists:
            ops += plan_attrs(st, mode, owner, group).ops
        elif ctx.check_mode:
            return True
    cmds = grouped_commands(ops)
    if cmds and not ctx.check_mode:
        for group in batches(cmds):
            res = await ctx.run(" && ".join(group))
            if res.rc != 0:
                raise ProbeFailed(command_failure(f"setting attributes under {dest}", res))
    return bool(cmds)
