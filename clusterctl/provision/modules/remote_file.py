"""What a path on the host is, and how to bring it to a wanted content, mode, owner and group.

Shared by the file-shaped modules (copy, template, file, lineinfile, blockinfile, stat, unarchive).
``probe`` stats any number of paths in ONE command (type, mode, ids, names, size, times, link
target, checksum) and ``parse_probe`` is its pure parser. ``plan_attrs`` returns only the
``chmod``/``chown`` commands that close the gap (pyinfra's rule: emit nothing when nothing differs).
``write_file`` uploads over SFTP to a temporary name beside the destination and moves it into
place with the right attributes in one more command, so a half-written file is never visible.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
import stat as st
from dataclasses import dataclass, field

from clusterctl.provision.modules.context import ModuleContext
from clusterctl.provision.modules.modes import format_mode, resolve_mode

q = shlex.quote

CHECKSUM_TOOLS = {"sha1": "sha1sum", "sha256": "sha256sum", "md5": "md5sum", "sha512": "sha512sum", "sha224": "sha224sum", "sha384": "sha384sum"}

# One pass of shell tests (builtins) per path, then ONE ``stat`` for every existing path and ONE
# checksum run for every readable regular file: two program starts per probe, however many paths.
_PROBE = r"""_cc_in() { if [ "$CC_FOLLOW" = 1 ]; then [ -e "$1" ]; else [ -e "$1" ] || [ -L "$1" ]; fi; }
_cc_sum() { [ -n "$CC_SUM" ] && { [ "$CC_FOLLOW" = 1 ] || [ ! -L "$1" ]; } && [ -f "$1" ] && [ -r "$1" ]; }
i=0
for p in %(paths)s; do
  if [ "$CC_FOLLOW" != 1 ] && [ -L "$p" ]; then t=link
  elif [ -d "$p" ]; then t=directory
  elif [ -f "$p" ]; then t=file
  elif [ -e "$p" ]; then t=other
  elif [ -L "$p" ]; then t=link
  else t=absent; fi
  printf '@@ %%s %%s\n' "$i" "$t"
  if [ $t != absent ]; then
    a=; [ -r "$p" ] && a=${a}r; [ -w "$p" ] && a=${a}w; [ -x "$p" ] && a=${a}x; printf 'P %%s\n' "$a"
    [ -L "$p" ] && printf 'L %%s\nR %%s\n' "$(readlink -- "$p")" "$(readlink -f -- "$p" 2>/dev/null)"
  fi
  _cc_in "$p" && printf 'X %%s\n' "$i"
  _cc_sum "$p" && printf 'K %%s\n' "$i"
  i=$((i+1))
done
set --
for p in %(paths)s; do _cc_in "$p" && set -- "$@" "$p"; done
echo '--stat--'
[ $# -gt 0 ] && stat $CC_STAT_OPT -c '%%a|%%u|%%g|%%U|%%G|%%s|%%Y|%%X|%%Z|%%i|%%h|%%d|%%f' -- "$@"
set --
for p in %(paths)s; do _cc_sum "$p" && set -- "$@" "$p"; done
echo '--sum--'
[ $# -gt 0 ] && $CC_SUM -- "$@"
exit 0
"""


@dataclass
class RemoteStat:
    path: str
    state: str = "absent"  # absent | file | directory | link | other
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    owner: str | None = None
    group: str | None = None
    size: int = 0
    mtime: float = 0.0
    atime: float = 0.0
    ctime: float = 0.0
    inode: int = 0
    nlink: int = 0
    dev: int = 0
    raw_mode: int = 0
    link_target: str | None = None
    resolved: str | None = None
    checksum: str | None = None
    access: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.state != "absent"

    def as_ansible_stat(self, checksum_key: bool = True) -> dict:
        """The ``stat`` dict of Ansible's stat module."""
        if not self.exists:
            return {"exists": False}
        m = self.raw_mode
        out = {
            "exists": True,
            "path": self.path,
            "mode": format_mode(self.mode),
            "isdir": st.S_ISDIR(m),
            "isreg": st.S_ISREG(m),
            "islnk": self.state == "link",
            "isblk": st.S_ISBLK(m),
            "ischr": st.S_ISCHR(m),
            "isfifo": st.S_ISFIFO(m),
            "issock": st.S_ISSOCK(m),
            "uid": self.uid,
            "gid": self.gid,
            "pw_name": self.owner,
            "gr_name": self.group,
            "size": self.size,
            "mtime": self.mtime,
            "atime": self.atime,
            "ctime": self.ctime,
            "inode": self.inode,
            "nlink": self.nlink,
            "dev": self.dev,
            "readable": "r" in self.access,
            "writeable": "w" in self.access,
            "executable": "x" in self.access,
        }
        mode = self.mode or 0
        for name, bit in (("rusr", st.S_IRUSR), ("wusr", st.S_IWUSR), ("xusr", st.S_IXUSR),
                          ("rgrp", st.S_IRGRP), ("wgrp", st.S_IWGRP), ("xgrp", st.S_IXGRP),
                          ("roth", st.S_IROTH), ("woth", st.S_IWOTH), ("xoth", st.S_IXOTH),
                          ("isuid", st.S_ISUID), ("isgid", st.S_ISGID)):
            out[name] = bool(mode & bit)
        if self.state == "link":
            out["lnk_source"] = self.resolved
            out["lnk_target"] = self.link_target
        if checksum_key and self.checksum is not None:
            out["checksum"] = self.checksum
        return out


def probe_command(paths: list[str], checksum: str | None = "sha1", follow: bool = False) -> str:
    tool = CHECKSUM_TOOLS.get(checksum or "", "") if checksum else ""
    words = " ".join(q(p) for p in paths)
    head = f"CC_SUM={q(tool)}; CC_FOLLOW={1 if follow else 0}; CC_STAT_OPT={'-L' if follow else ''}\n"
    return head + _PROBE % {"paths": words}


def parse_probe(text: str, paths: list[str]) -> list[RemoteStat]:
    """Pure parser of ``probe_command`` output: one ``RemoteStat`` per requested path."""
    stats = [RemoteStat(path=p) for p in paths]
    existing: list[RemoteStat] = []
    summed: list[RemoteStat] = []
    cur: RemoteStat | None = None
    section = "paths"
    stat_lines: list[str] = []
    sum_lines: list[str] = []
    for line in text.splitlines():
        if line == "--stat--":
            section = "stat"
        elif line == "--sum--":
            section = "sum"
        elif section == "stat":
            stat_lines.append(line)
        elif section == "sum":
            sum_lines.append(line)
        elif line.startswith("@@ "):
            _, idx, state = line.split(" ", 2)
            cur = stats[int(idx)]
            cur.state = state.strip()
        elif cur is None:
            continue
        elif line.startswith("P "):
            cur.access = line[2:].strip()
        elif line.startswith("L "):
            cur.link_target = line[2:]
        elif line.startswith("R "):
            cur.resolved = line[2:]
        elif line.startswith("X "):
            existing.append(stats[int(line[2:])])
        elif line.startswith("K "):
            summed.append(stats[int(line[2:])])
    for st_, line in zip(existing, stat_lines):
        f = line.split("|")
        if len(f) >= 13:
            st_.mode = int(f[0], 8)
            st_.uid, st_.gid = int(f[1]), int(f[2])
            st_.owner, st_.group = f[3], f[4]
            st_.size = int(f[5])
            st_.mtime, st_.atime, st_.ctime = float(f[6]), float(f[7]), float(f[8])
            st_.inode, st_.nlink, st_.dev = int(f[9]), int(f[10]), int(f[11])
            st_.raw_mode = int(f[12], 16)
    for st_, line in zip(summed, sum_lines):
        st_.checksum = line.lstrip("\\").split(" ", 1)[0] or None
    return stats


# one ``sh -c`` argument may not exceed 128 KiB (Linux MAX_ARG_STRLEN); the probe names each path 3 times
PROBE_BATCH_CHARS = 24_000


def batches(items: list[str], limit: int = PROBE_BATCH_CHARS) -> list[list[str]]:
    """Split shell words into groups whose quoted length stays under ``limit``."""
    out: list[list[str]] = [[]]
    size = 0
    for item in items:
        n = len(q(item)) + 1
        if out[-1] and size + n > limit:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return [b for b in out if b]


async def probe(ctx: ModuleContext, paths: list[str], checksum: str | None = "sha1", follow: bool = False) -> list[RemoteStat]:
    stats: list[RemoteStat] = []
    for group in batches(paths):
        res = await ctx.run(probe_command(group, checksum, follow))
        if res.rc != 0:
            from clusterctl.provision.modules.results import command_failure

            raise ProbeFailed(command_failure(f"stat of {', '.join(group)[:200]}", res))
        stats.extend(parse_probe(res.stdout, group))
    return stats


async def probe_one(ctx: ModuleContext, path: str, checksum: str | None = "sha1", follow: bool = False) -> RemoteStat:
    return (await probe(ctx, [path], checksum, follow))[0]


class ProbeFailed(Exception):
    """Carries a failed module result out of the probe helpers (caught in ``module_entry``)."""

    def __init__(self, result: dict):
        super().__init__(result.get("msg", "probe failed"))
        self.result = result


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _owner_matches(wanted: str | int | None, name: str | None, num: int | None) -> bool:
    if wanted is None:
        return True
    w = str(wanted)
    if w.isdigit():
        return num == int(w)
    return w == name


@dataclass
class AttrPlan:
    ops: list[tuple[str, str]]  # (operation such as "chmod 744" or "chown -h :staff", path)
    before: dict
    after: dict

    @property
    def changed(self) -> bool:
        return bool(self.ops)

    @property
    def commands(self) -> list[str]:
        return [f"{op} -- {q(path)}" for op, path in self.ops]


def plan_attrs(cur: RemoteStat, mode=None, owner=None, group=None, umask: int = 0o022) -> AttrPlan:
    """The chmod/chown operations that bring an EXISTING path to ``mode``/``owner``/``group``."""
    ops: list[tuple[str, str]] = []
    before: dict = {}
    after: dict = {}
    path = cur.path
    is_link = cur.state == "link"
    if mode is not None and not is_link:
        want = resolve_mode(mode, cur.mode, cur.state == "directory", umask)
        if want != cur.mode:
            ops.append((f"chmod {want:o}", path))
            before["mode"], after["mode"] = format_mode(cur.mode), format_mode(want)
    own_ok = _owner_matches(owner, cur.owner, cur.uid)
    grp_ok = _owner_matches(group, cur.group, cur.gid)
    if not (own_ok and grp_ok):
        spec = (str(owner) if not own_ok else "") + (":" + str(group) if not grp_ok else "")
        ops.append((f"chown {'-h ' if is_link else ''}{q(spec)}", path))
        if not own_ok:
            before["owner"], after["owner"] = cur.owner, str(owner)
        if not grp_ok:
            before["group"], after["group"] = cur.group, str(group)
    return AttrPlan(ops, before, after)


def grouped_commands(ops: list[tuple[str, str]]) -> list[str]:
    """One ``chmod``/``chown`` per distinct operation for many paths (a tree fix is a few programs, not one per file)."""
    groups: dict[str, list[str]] = {}
    for op, path in ops:
        groups.setdefault(op, []).append(path)
    return [f"{op} -- " + " ".join(q(p) for p in chunk) for op, paths in groups.items() for chunk in batches(paths)]


def new_path_attrs(path: str, mode=None, owner=None, group=None, is_dir: bool = False, umask: int = 0o022,
                   default_mode: int | None = None) -> list[str]:
    """chmod/chown for a path this task just created (nothing to compare with)."""
    cmds = []
    want = resolve_mode(mode, None, is_dir, umask) if mode is not None else default_mode
    if want is not None:
        cmds.append(f"chmod {want:o} -- {q(path)}")
    if owner is not None or group is not None:
        spec = (str(owner) if owner is not None else "") + (":" + str(group) if group is not None else "")
        cmds.append(f"chown {q(spec)} -- {q(path)}")
    return cmds


def tmp_name_beside(dest: str) -> str:
    parent, _, base = dest.rpartition("/")
    return f"{parent}/.{base}.clusterctl.{secrets.token_hex(4)}" if parent or dest.startswith("/") else f".{base}.clusterctl.{secrets.token_hex(4)}"


async def upload(ctx: ModuleContext, data: bytes, remote_path: str) -> None:
    """Put bytes on the host: SFTP when it writes as the task's user, else ``cat`` under become."""
    if ctx.writes_as_login_user:
        await ctx.conn.put(data, remote_path, mode=0o600)  # the final mode is set by the caller
        return
    res = await ctx.run(f"umask 077; cat > {q(remote_path)}", stdin=data)
    if res.rc != 0:
        from clusterctl.provision.modules.results import command_failure

        raise ProbeFailed(command_failure(f"upload to {remote_path}", res))


def backup_name(dest: str, epoch: float) -> str:
    import time

    t = time.localtime(epoch)
    return f"{dest}.{time.strftime('%Y-%m-%d@%H:%M:%S', t)}~"


async def write_file(ctx: ModuleContext, dest: str, data: bytes, cur: RemoteStat, *, mode=None, owner=None,
                     group=None, backup: bool = False) -> dict:
    """Replace ``dest`` with ``data`` atomically; keep the old file's attributes unless told otherwise.

    Returns extra result keys (``backup_file``). Raises ``ProbeFailed`` with a failed result.
    """
    import time

    tmp = tmp_name_beside(dest)
    await upload(ctx, data, tmp)
    is_new = cur.state != "file"
    if is_new:
        want_mode = resolve_mode(mode, None, False) if mode is not None else 0o644
        own = owner
        grp = group
    else:
        want_mode = resolve_mode(mode, cur.mode, False) if mode is not None else cur.mode
        own = owner if owner is not None else cur.uid
        grp = group if group is not None else cur.gid
    steps = [f"chmod {want_mode:o} {q(tmp)}"]
    if own is not None or grp is not None:
        spec = (str(own) if own is not None else "") + (":" + str(grp) if grp is not None else "")
        steps.append(f"chown {q(spec)} {q(tmp)}")
    extra = {}
    if backup and cur.state == "file":
        bname = backup_name(dest, time.time())
        steps.append(f"cp -p -- {q(dest)} {q(bname)}")
        extra["backup_file"] = bname
    steps.append(f"mv -f -- {q(tmp)} {q(dest)}")
    script = " && ".join(steps) + f" || {{ rc=$?; rm -f -- {q(tmp)}; exit $rc; }}"
    res = await ctx.run(script)
    if res.rc != 0:
        from clusterctl.provision.modules.results import command_failure

        raise ProbeFailed(command_failure(f"writing {dest}", res))
    return extra


async def read_file(ctx: ModuleContext, path: str) -> bytes:
    """Read a whole remote file: SFTP as the login user, ``cat`` under become otherwise."""
    if ctx.writes_as_login_user:
        return await ctx.conn.get(path)
    res = await ctx.conn.run(f"cat -- {q(path)} | base64", become=ctx.become, become_user=ctx.become_user, timeout=ctx.timeout)
    if res.rc != 0:
        from clusterctl.provision.modules.results import command_failure

        raise ProbeFailed(command_failure(f"reading {path}", res))
    import base64

    return base64.b64decode(res.stdout)
