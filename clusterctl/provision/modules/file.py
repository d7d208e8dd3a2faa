"""``file``: a path is a directory, a file, a symlink, a hard link, touched, or absent — with mode/owner/group.

One probe (the path, its parents, a link's source) decides; the module then emits only the commands
that close the gap (``mkdir``, ``ln -s``, ``rm -rf``, ``chmod``, ``chown``), all in one command.
``recurse`` lists the tree once (``find | stat``) and fixes only the entries that differ. As in
Ansible, ``touch`` changes timestamps and so reports ``changed`` every run unless both
``modification_time`` and ``access_time`` are ``preserve``. ``follow`` (default yes) applies a
file/directory state to a symlink's target.
"""

from __future__ import annotations

import posixpath
import shlex

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.modes import format_mode, resolve_mode, validate_mode
from clusterctl.provision.modules.remote_file import RemoteStat, batches, grouped_commands, new_path_attrs, plan_attrs, probe
from clusterctl.provision.modules.results import command_failure, failed, ok

q = shlex.quote
STATES = ("absent", "directory", "file", "hard", "link", "touch")


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def path_arg(args: dict) -> str | None:
    for key in ("path", "dest", "name"):
        if args.get(key) is not None:
            return str(args[key])
    return None


def validate_file(args: dict) -> None:
    if path_arg(args) is None:
        raise ModuleArgError("file: missing required arguments: path")
    state = args.get("state")
    if state is not None and "{{" not in str(state) and state not in STATES:
        raise ModuleArgError(f"file: value of state must be one of: {', '.join(STATES)}, got: {state}")
    if state == "hard" and args.get("src") is None:
        raise ModuleArgError("file: src is required for state=hard")
    validate_mode(args.get("mode"))


def _ancestors(path: str) -> list[str]:
    out = []
    p = posixpath.dirname(path.rstrip("/"))
    while p and p not in ("/", "."):
        out.append(p)
        p = posixpath.dirname(p)
    return list(reversed(out))


def _final(path: str, state: str, cur: RemoteStat | None, args: dict, changed: bool, diff: dict | None, ctx: ModuleContext, **extra) -> dict:
    result = ok(changed, path=path, state=state, **extra)
    if state != "absent" and cur is not None:
        result["mode"] = format_mode(resolve_mode(args["mode"], cur.mode, state == "directory")) if args.get("mode") is not None and cur.mode is not None else format_mode(cur.mode)
        result["owner"] = str(args["owner"]) if args.get("owner") is not None else cur.owner
        result["group"] = str(args["group"]) if args.get("group") is not None else cur.group
        result["uid"], result["gid"], result["size"] = cur.uid, cur.gid, cur.size
    if diff is not None and ctx.diff:
        result["diff"] = diff
    return result


def _initial_diff(path: str, state: str, prev: str) -> dict:
    d = {"before": {"path": path}, "after": {"path": path}}
    if prev != state:
        d["before"]["state"], d["after"]["state"] = prev, state
    return d


async def _apply(ctx: ModuleContext, cmds: list[str], what: str) -> dict | None:
    if not cmds or ctx.check_mode:
        return None
    for group in batches(cmds):  # a recursive fix of a big tree must not exceed one argument's size
        res = await ctx.run(" && ".join(group))
        if res.rc != 0:
            return command_failure(what, res)
    return None


async def run_file(ctx: ModuleContext, args: dict) -> dict:
    path = path_arg(args)
    assert path is not None
    follow = _bool(args.get("follow"), True)
    recurse = _bool(args.get("recurse"))
    state = args.get("state")
    src = args.get("src")
    paths = [path]
    src_abs = None
    if src is not None:
        src = str(src)
        src_abs = src if src.startswith("/") else posixpath.normpath(posixpath.join(posixpath.dirname(path), src))
        paths.append(src_abs)
    stats = await probe(ctx, paths + _ancestors(path), checksum=None)
    cur = stats[0]
    src_stat = stats[1] if src_abs else None
    if state is None:
        if cur.exists:
            state = "directory" if cur.state == "directory" else "link" if cur.state == "link" and src else "file"
        else:
            state = "directory" if recurse else "file"
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")

    if state == "absent":
        if not cur.exists:
            return ok(False, path=path, state="absent")
        diff = {"before": {"path": path, "state": cur.state}, "after": {"path": path, "state": "absent"}}
        err = await _apply(ctx, [f"rm -rf -- {q(path)}"], f"removing {path}")
        return err or _final(path, "absent", None, args, True, diff, ctx)

    if follow and cur.state == "link" and state in ("file", "directory", "touch"):
        (target,) = await probe(ctx, [path], checksum=None, follow=True)
        if target.exists:
            target.path = cur.resolved or path
            cur = target
            path = target.path

    if state == "file":
        if cur.state not in ("file",):
            return failed(f"file ({path}) is {cur.state}, cannot continue", path=path, state=cur.state)
        plan = plan_attrs(cur, mode, owner, group)
        diff = _initial_diff(path, "file", cur.state)
        diff["before"].update(plan.before), diff["after"].update(plan.after)
        err = await _apply(ctx, plan.commands, f"setting attributes of {path}")
        return err or _final(path, "file", cur, args, plan.changed, diff, ctx)

    if state == "directory":
        return await _ensure_directory(ctx, path, cur, stats[len(paths):], args, recurse)

    if state == "touch":
        return await _touch(ctx, path, cur, args)

    if state == "link":
        return await _link(ctx, path, cur, src, src_stat, args)

    if state == "hard":
        return await _hard(ctx, path, cur, src_abs or "", src_stat, args)
    return failed(f"unsupported state {state}")


async def _ensure_directory(ctx: ModuleContext, path: str, cur: RemoteStat, ancestors: list[RemoteStat], args: dict, recurse: bool) -> dict:
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")
    diff = _initial_diff(path, "directory", cur.state)
    if cur.state == "absent":
        missing = [a.path for a in ancestors if not a.exists] + [path]
        blocked = [a for a in ancestors if a.exists and a.state not in ("directory", "link")]
        if blocked:
            return failed(f"there is a non-directory file at {blocked[0].path}")
        cmds = [f"mkdir -p -- {q(path)}"]
        for p in missing:
            cmds += new_path_attrs(p, mode, owner, group, is_dir=True)
        if recurse:
            cmds += (await _recurse_plan(ctx, path, args, fresh=True))
        err = await _apply(ctx, cmds, f"creating directory {path}")
        fake = RemoteStat(path=path, state="directory", mode=resolve_mode(mode, None, True) if mode is not None else 0o755,
                          owner=str(owner) if owner is not None else None, group=str(group) if group is not None else None)
        return err or _final(path, "directory", fake, args, True, diff, ctx)
    if cur.state != "directory":
        return failed(f"{path} already exists as a {cur.state}", path=path, state=cur.state)
    plan = plan_attrs(cur, mode, owner, group)
    diff["before"].update(plan.before), diff["after"].update(plan.after)
    cmds = list(plan.commands)
    if recurse:
        cmds += await _recurse_plan(ctx, path, args)
    err = await _apply(ctx, cmds, f"setting attributes under {path}")
    return err or _final(path, "directory", cur, args, bool(cmds), diff, ctx)


async def _recurse_plan(ctx: ModuleContext, path: str, args: dict, fresh: bool = False) -> list[str]:
    """Commands fixing mode/owner/group of everything below ``path`` that differs (one listing)."""
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")
    if fresh or (mode is None and owner is None and group is None):
        return []
    res = await ctx.run(f"find {q(path)} -mindepth 1 -exec stat -c '%a|%u|%g|%U|%G|%F|%n' {{}} +")
    ops: list[tuple[str, str]] = []
    for line in res.stdout.splitlines():
        parts = line.split("|", 6)
        if len(parts) < 7:
            continue
        kind = {"directory": "directory", "symbolic link": "link"}.get(parts[5], "file")
        entry = RemoteStat(path=parts[6], state=kind, mode=int(parts[0], 8), uid=int(parts[1]), gid=int(parts[2]),
                           owner=parts[3], group=parts[4])
        ops += plan_attrs(entry, mode, owner, group).ops
    return grouped_commands(ops)


async def _touch(ctx: ModuleContext, path: str, cur: RemoteStat, args: dict) -> dict:
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")
    mtime = args.get("modification_time") or "now"
    atime = args.get("access_time") or "now"
    diff = _initial_diff(path, "touch", cur.state)
    cmds: list[str] = []
    if not cur.exists:
        cmds.append(f": >> {q(path)}")
        cmds += new_path_attrs(path, mode, owner, group)
        changed = True
    else:
        plan = plan_attrs(cur, mode, owner, group)
        cmds += plan.commands
        diff["before"].update(plan.before), diff["after"].update(plan.after)
        changed = plan.changed
    for flag, value in (("-m", mtime), ("-a", atime)):
        if value == "preserve":
            continue
        stamp = "" if value == "now" else f"-d {q(str(value))} "
        cmds.append(f"touch -c {flag} {stamp}-- {q(path)}")
        changed = True
    err = await _apply(ctx, cmds, f"touching {path}")
    if err:
        return err
    if not cur.exists:
        cur = RemoteStat(path=path, state="file", mode=resolve_mode(mode, None, False) if mode is not None else 0o644)
    return _final(path, "file", cur, args, changed, diff, ctx)


async def _link(ctx: ModuleContext, path: str, cur: RemoteStat, src: str | None, src_stat: RemoteStat | None, args: dict) -> dict:
    force = _bool(args.get("force"))
    owner, group = args.get("owner"), args.get("group")
    if src is None:
        if cur.state == "link":
            src = cur.link_target
        else:
            return failed("src is required for creating new symlinks")
    if src_stat is not None and not src_stat.exists and not force:
        return failed(f"src file does not exist, use \"force=yes\" if you really want to create the link: {src}", path=path, src=src)
    diff = _initial_diff(path, "link", cur.state)
    cmds: list[str] = []
    if cur.state == "link" and cur.link_target == src:
        pass
    elif cur.state in ("absent", "link"):
        cmds.append(f"ln -sfn -- {q(src)} {q(path)}")
    elif cur.state == "directory":
        if not force:
            return failed(f"refusing to convert from directory to symlink for {path}", path=path)
        cmds.append(f"rmdir -- {q(path)} && ln -s -- {q(src)} {q(path)}")
    else:
        if not force:
            return failed(f"refusing to convert from {cur.state} to symlink for {path}", path=path)
        cmds.append(f"rm -f -- {q(path)} && ln -s -- {q(src)} {q(path)}")
    if cur.state == "link" and cur.link_target != src:
        diff["before"]["src"], diff["after"]["src"] = cur.link_target, src
    link_now = RemoteStat(path=path, state="link", owner=cur.owner if cur.state == "link" else None,
                          group=cur.group if cur.state == "link" else None,
                          uid=cur.uid if cur.state == "link" else None, gid=cur.gid if cur.state == "link" else None)
    if owner is not None or group is not None:
        if cmds:
            spec = (str(owner) if owner is not None else "") + (":" + str(group) if group is not None else "")
            cmds.append(f"chown -h {q(spec)} -- {q(path)}")
        else:
            cmds += plan_attrs(link_now, None, owner, group).commands
    err = await _apply(ctx, cmds, f"linking {path} -> {src}")
    return err or _final(path, "link", link_now, args, bool(cmds), diff, ctx, src=src)


async def _hard(ctx: ModuleContext, path: str, cur: RemoteStat, src: str, src_stat: RemoteStat | None, args: dict) -> dict:
    if src_stat is None or not src_stat.exists:
        return failed(f"src does not exist: {src}", path=path)
    diff = _initial_diff(path, "hard", cur.state)
    cmds: list[str] = []
    same = cur.exists and cur.inode == src_stat.inode and cur.dev == src_stat.dev
    if not same:
        if cur.exists and cur.state != "file" and not _bool(args.get("force")):
            return failed(f"refusing to convert from {cur.state} to hard link for {path}", path=path)
        cmds.append(f"ln -f -- {q(src)} {q(path)}")
    plan = plan_attrs(src_stat if not same else cur, args.get("mode"), args.get("owner"), args.get("group"))
    cmds += [c.replace(q(src_stat.path), q(path)) for c in plan.commands]
    err = await _apply(ctx, cmds, f"hard-linking {path} to {src}")
    return err or _final(path, "hard", src_stat, args, bool(cmds), diff, ctx, src=src)
