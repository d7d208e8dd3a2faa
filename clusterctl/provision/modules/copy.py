"""``copy`` and ``template``: make a file on the host hold exactly some bytes, with mode/owner/group.

Idempotent by checksum: one probe command returns the destination's sha1 and attributes; the
bytes travel (SFTP, temp name beside the destination, then ``mv``) only when the sha1 differs, and
``chmod``/``chown`` run only for attributes that differ. ``src`` may be a local file or folder
(Ansible's trailing-slash rule: ``src: dir/`` copies the folder's contents, ``src: dir`` copies
the folder itself into ``dest``); ``remote_src`` copies a file already on the host. ``template``
renders its source locally with the host's variables (``ctx.render_template``) and then behaves
exactly like ``copy`` with ``content``. Check mode computes the same answer and writes nothing;
diff mode returns the before/after text.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from pathlib import Path

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.modes import format_mode, resolve_mode, validate_mode
from clusterctl.provision.modules.remote_file import (
    RemoteStat, plan_attrs, probe, read_file, sha1, new_path_attrs, ProbeFailed, write_file, tmp_name_beside,
)
from clusterctl.provision.modules.results import as_text, command_failure, content_diff, failed, ok

q = shlex.quote
DIFF_MAX_BYTES = 104448  # Ansible's default max_diff_size is 104448
TREE_UPLOAD_CONCURRENCY = 8


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_copy(args: dict) -> None:
    if args.get("dest") is None:
        raise ModuleArgError("copy: missing required arguments: dest")
    if args.get("src") is None and args.get("content") is None:
        raise ModuleArgError("copy: src (or content) is required")
    if args.get("src") is not None and args.get("content") is not None:
        raise ModuleArgError("copy: src and content are mutually exclusive")
    validate_mode(args.get("mode"))


def validate_template(args: dict) -> None:
    for key in ("src", "dest"):
        if args.get(key) is None:
            raise ModuleArgError(f"template: missing required arguments: {key}")
    validate_mode(args.get("mode"))


def _final_mode(cur: RemoteStat | None, mode) -> str | None:
    """The octal mode the file ends with (Ansible reports '0640', not the symbolic request)."""
    current = cur.mode if cur is not None and cur.state == "file" else None
    if mode is None:
        return format_mode(current if current is not None else 0o644)
    return format_mode(resolve_mode(mode, current, False))


def content_bytes(content) -> bytes:
    """``content`` as Ansible writes it: text as is, a mapping or list as JSON, anything else as text."""
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode()
    if isinstance(content, (dict, list)):
        return json.dumps(content).encode()
    return str(content).encode()


def _file_result(dest: str, cur: RemoteStat | None, checksum: str, size: int, args: dict, changed: bool, **extra) -> dict:
    return ok(changed, dest=dest, path=dest, checksum=checksum, size=size, state="file",
              mode=_final_mode(cur, args.get("mode")),
              owner=(cur.owner if cur else None) if args.get("owner") is None else args.get("owner"),
              group=(cur.group if cur else None) if args.get("group") is None else args.get("group"),
              uid=cur.uid if cur else None, gid=cur.gid if cur else None, **extra)


async def ensure_content(ctx: ModuleContext, dest: str, data: bytes, args: dict, cur: RemoteStat,
                         parent: RemoteStat | None = None, **extra) -> dict:
    """Bring one regular file ``dest`` to ``data`` plus the task's mode/owner/group."""
    new_sum = sha1(data)
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")
    if cur.state == "directory":
        return failed(f"can not copy to {dest}: it is a directory")
    if cur.exists and not _bool(args.get("force"), True):
        return _file_result(dest, cur, cur.checksum or "", cur.size, args, False, msg="file already exists", **extra)
    if parent is not None and not parent.exists:
        return failed(f"Destination directory {parent.path} does not exist")
    content_changed = cur.state != "file" or cur.checksum != new_sum
    result_extra = dict(extra)
    diffs = []
    if content_changed:
        if ctx.diff:
            before = None
            if cur.state == "file":
                before = "<file too large to diff>" if cur.size > DIFF_MAX_BYTES else as_text(await read_file(ctx, dest))
            after = "<file too large to diff>" if len(data) > DIFF_MAX_BYTES else as_text(data)
            diffs.append(content_diff(dest, before, after))
        if not ctx.check_mode:
            validate_cmd = args.get("validate")
            if validate_cmd:
                res = await validate_on_host(ctx, data, str(validate_cmd), dest)
                if res is not None:
                    return res
            result_extra.update(await write_file(ctx, dest, data, cur, mode=mode, owner=owner, group=group,
                                                 backup=_bool(args.get("backup"))))
        return _file_result(dest, cur, new_sum, len(data), args, True, diff=diffs, **result_extra)
    plan = plan_attrs(cur, mode, owner, group)
    if plan.changed:
        if ctx.diff:
            diffs.append({"before": plan.before, "after": plan.after, "before_header": dest, "after_header": dest})
        if not ctx.check_mode:
            res = await ctx.run(" && ".join(plan.commands))
            if res.rc != 0:
                return command_failure(f"setting attributes of {dest}", res)
    return _file_result(dest, cur, new_sum, len(data), args, plan.changed, diff=diffs, **result_extra)


async def validate_on_host(ctx: ModuleContext, data: bytes, validate_cmd: str, dest: str) -> dict | None:
    """Run ``validate`` (``%s`` = a temp copy of the new content) on the host; a failed result if it fails."""
    if "%s" not in validate_cmd:
        return failed(f"validate must contain %s: {validate_cmd}")
    tmp = tmp_name_beside(dest) + ".validate"
    from clusterctl.provision.modules.remote_file import upload

    await upload(ctx, data, tmp)
    res = await ctx.run(f"{validate_cmd.replace('%s', q(tmp))}; rc=$?; rm -f -- {q(tmp)}; exit $rc")
    if res.rc != 0:
        return command_failure(f"failed to validate {dest}", res)
    return None


async def _resolve_dest(ctx: ModuleContext, dest: str, src_name: str | None) -> tuple[str, RemoteStat, RemoteStat]:
    """Destination file path (``dest/`` or an existing folder get ``src``'s name), its stat and its parent's."""
    made_parent = False
    if dest.endswith("/"):
        if not src_name:
            raise ProbeFailed(failed(f"can not use content with a dir as dest: {dest}"))
        await _mkdirs(ctx, dest.rstrip("/") or "/", args_dir_mode=None)
        dest = dest + src_name
        made_parent = True
    parent_path = os.path.dirname(dest) or "."
    cur, parent = await probe(ctx, [dest, parent_path])
    if made_parent and not parent.exists:  # check mode: the folder would have been made
        parent.state = "directory"
    if cur.state == "directory" or (cur.state == "link" and src_name):
        dirs = await probe(ctx, [dest], checksum=None, follow=True)
        if dirs[0].state == "directory":
            if not src_name:
                raise ProbeFailed(failed(f"can not use content with a dir as dest: {dest}"))
            parent = dirs[0]
            dest = f"{dest.rstrip('/')}/{src_name}"
            (cur,) = await probe(ctx, [dest])
    return dest, cur, parent


async def _mkdirs(ctx: ModuleContext, path: str, args_dir_mode) -> None:
    if ctx.check_mode:
        return
    res = await ctx.run(f"mkdir -p -- {q(path)}")
    if res.rc != 0:
        raise ProbeFailed(command_failure(f"creating {path}", res))


async def run_copy(ctx: ModuleContext, args: dict) -> dict:
    dest = str(args["dest"])
    if _bool(args.get("remote_src")):
        return await _copy_remote(ctx, str(args["src"]), dest, args)
    if args.get("content") is not None:
        data = content_bytes(args["content"])
        dest, cur, parent = await _resolve_dest(ctx, dest, None)
        return await ensure_content(ctx, dest, data, args, cur, parent)
    src_text = str(args["src"])
    local = ctx.local_file("files", src_text)
    if local.is_dir():
        return await _copy_tree(ctx, local, src_text.endswith("/"), dest, args)
    dest, cur, parent = await _resolve_dest(ctx, dest, local.name)
    return await ensure_content(ctx, dest, local.read_bytes(), args, cur, parent, src=str(local))


async def _copy_tree(ctx: ModuleContext, local: Path, contents_only: bool, dest: str, args: dict) -> dict:
    """Copy a local folder: one probe for every file, then only the files that differ."""
    root = dest.rstrip("/") if contents_only else f"{dest.rstrip('/')}/{local.name}"
    files: list[tuple[str, Path]] = []
    dirs: list[str] = [root]
    for dirpath, dirnames, filenames in os.walk(local):
        dirnames.sort()
        rel = os.path.relpath(dirpath, local)
        base = root if rel == "." else f"{root}/{rel}"
        dirs.extend(f"{base}/{d}" for d in dirnames)
        files.extend((f"{base}/{f}", Path(dirpath) / f) for f in sorted(filenames))
    stats = await probe(ctx, dirs + [f for f, _ in files])
    dir_stats, file_stats = stats[: len(dirs)], stats[len(dirs):]
    missing = [d.path for d in dir_stats if not d.exists]
    changed = bool(missing)
    if missing and not ctx.check_mode:
        dir_mode = args.get("directory_mode")
        cmds = [f"mkdir -p -- {' '.join(q(d) for d in missing)}"]
        for d in missing:
            cmds += new_path_attrs(d, dir_mode, args.get("owner"), args.get("group"), is_dir=True)
        res = await ctx.run(" && ".join(cmds))
        if res.rc != 0:
            return command_failure(f"creating folders under {root}", res)
    diffs = []
    gate = asyncio.Semaphore(TREE_UPLOAD_CONCURRENCY)

    async def one_file(remote: str, path: Path, cur: RemoteStat) -> dict:
        async with gate:
            return await ensure_content(ctx, remote, path.read_bytes(), args, cur)

    # files are independent: keep several SFTP transfers in flight on the one connection
    results = await asyncio.gather(*(one_file(r, p, c) for (r, p), c in zip(files, file_stats)))
    for one in results:
        if one.get("failed"):
            return one
        changed = changed or one["changed"]
        diffs.extend(one.get("diff") or [])
    return ok(changed, dest=root, src=str(local), state="directory", diff=diffs)


async def _copy_remote(ctx: ModuleContext, src: str, dest: str, args: dict) -> dict:
    (src_stat,) = await probe(ctx, [src], follow=True)
    if src_stat.state != "file":
        return failed(f"Source {src} not found" if not src_stat.exists else f"remote_src copy supports files only; {src} is a {src_stat.state}")
    dest, cur, parent = await _resolve_dest(ctx, dest, os.path.basename(src))
    if cur.state == "file" and cur.checksum == src_stat.checksum:
        return await _attrs_only(ctx, dest, cur, args)
    if cur.exists and not _bool(args.get("force"), True):
        return ok(False, dest=dest, msg="file already exists")
    if not parent.exists:
        return failed(f"Destination directory {parent.path} does not exist")
    diffs = []
    if ctx.diff:
        before = as_text(await read_file(ctx, dest)) if cur.state == "file" and cur.size <= DIFF_MAX_BYTES else None
        after = as_text(await read_file(ctx, src)) if src_stat.size <= DIFF_MAX_BYTES else "<file too large to diff>"
        diffs.append(content_diff(dest, before, after))
    if not ctx.check_mode:
        tmp = tmp_name_beside(dest)
        res = await ctx.run(f"cp -- {q(src)} {q(tmp)}")
        if res.rc != 0:
            return command_failure(f"copying {src}", res)
        mode = args.get("mode") if args.get("mode") is not None else src_stat.mode
        fake = RemoteStat(path=tmp, state="file", mode=src_stat.mode, uid=src_stat.uid, gid=src_stat.gid,
                          owner=src_stat.owner, group=src_stat.group)
        cmds = plan_attrs(fake, mode, args.get("owner"), args.get("group")).commands
        cmds.append(f"mv -f -- {q(tmp)} {q(dest)}")
        res = await ctx.run(" && ".join(cmds) + f" || {{ rc=$?; rm -f -- {q(tmp)}; exit $rc; }}")
        if res.rc != 0:
            return command_failure(f"installing {dest}", res)
    return _file_result(dest, cur, src_stat.checksum or "", src_stat.size, args, True, src=src, diff=diffs)


async def _attrs_only(ctx: ModuleContext, dest: str, cur: RemoteStat, args: dict) -> dict:
    plan = plan_attrs(cur, args.get("mode"), args.get("owner"), args.get("group"))
    if plan.changed and not ctx.check_mode:
        res = await ctx.run(" && ".join(plan.commands))
        if res.rc != 0:
            return command_failure(f"setting attributes of {dest}", res)
    diffs = [{"before": plan.before, "after": plan.after, "before_header": dest, "after_header": dest}] if plan.changed and ctx.diff else []
    return _file_result(dest, cur, cur.checksum or "", cur.size, args, plan.changed, diff=diffs)


async def run_template(ctx: ModuleContext, args: dict) -> dict:
    if ctx.render_template is None:
        return failed("template: no template renderer in this context")
    local = ctx.local_file("templates", str(args["src"]))
    text = ctx.render_template(local)
    newline = args.get("newline_sequence")
    if newline and newline != "\n":
        text = text.replace("\n", newline.encode().decode("unicode_escape"))
    dest, cur, parent = await _resolve_dest(ctx, str(args["dest"]), local.name)  # Ansible keeps ".j2" here
    return await ensure_content(ctx, dest, text.encode(), args, cur, parent, src=str(local))
