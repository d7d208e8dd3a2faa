"""``lineinfile`` and ``blockinfile``: edit a text file on the host, line or marked block at a time.

The editing rules are Ansible's, ported as pure functions over the file's lines
(``edit_line_present``, ``edit_line_absent``, ``edit_block``) so they are unit-tested without a
host. On the host: one probe, one SFTP read, and a write (temp + ``mv``) only when the new text
differs; then only the attribute commands that close the gap. Check mode computes the result and
writes nothing; diff mode returns the file before and after.
"""

from __future__ import annotations

import os
import re
import shlex

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.modes import validate_mode
from clusterctl.provision.modules.remote_file import RemoteStat, plan_attrs, probe, read_file, write_file
from clusterctl.provision.modules.results import command_failure, content_diff, failed, ok

q = shlex.quote
LINESEP = b"\n"


def _bool(value, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def _path(args: dict) -> str | None:
    for key in ("path", "dest", "destfile", "name"):
        if args.get(key) is not None:
            return str(args[key])
    return None


# ---- pure editing rules (Ansible's lineinfile.present/absent and blockinfile.main) ---------------------


def edit_line_present(lines: list[bytes], line: str, regexp: str | None = None, search_string: str | None = None,
                      insertafter: str | None = None, insertbefore: str | None = None, backrefs: bool = False,
                      firstmatch: bool = False) -> tuple[list[bytes], bool, str]:
    """Return (new lines, changed, msg) for ``state=present``; ``lines`` keep their endings."""
    lines = list(lines)
    if insertbefore is None and insertafter is None:
        insertafter = "EOF"
    bre_m = re.compile(regexp.encode()) if regexp is not None else None
    if insertafter not in (None, "BOF", "EOF"):
        bre_ins = re.compile(insertafter.encode())
    elif insertbefore not in (None, "BOF"):
        bre_ins = re.compile(insertbefore.encode())
    else:
        bre_ins = None
    index = [-1, -1]
    match = None
    exact_line_match = False
    b_line = line.encode()
    if bre_m is not None:
        for lineno, cur in enumerate(lines):
            found = bre_m.search(cur)
            if found:
                index[0], match = lineno, found
                if firstmatch:
                    break
    if search_string is not None:
        needle = search_string.encode()
        for lineno, cur in enumerate(lines):
            if needle in cur:
                index[0], match = lineno, True
                if firstmatch:
                    break
    if not match:
        for lineno, cur in enumerate(lines):
            if b_line == cur.rstrip(b"\r\n"):
                index[0] = lineno
                exact_line_match = True
            elif bre_ins is not None and bre_ins.search(cur):
                if insertafter:
                    index[1] = lineno + 1
                    if firstmatch:
                        break
                if insertbefore:
                    index[1] = lineno
                    if firstmatch:
                        break
    msg, changed = "", False

    def add_at(pos: int) -> None:
        nonlocal msg, changed
        lines.insert(pos, b_line + LINESEP)
        msg, changed = "line added", True

    if index[0] != -1:
        if backrefs and match is not None and match is not True:
            new_line = match.expand(b_line)
        else:
            new_line = b_line
        if not new_line.endswith(LINESEP):
            new_line += LINESEP
        if (regexp, search_string, match) == (None, None, None) and not exact_line_match:
            if insertafter and insertafter != "EOF":
                if lines and lines[-1][-1:] not in (b"\n", b"\r"):
                    lines[-1] = lines[-1] + LINESEP
                if len(lines) == index[1]:
                    if lines[index[1] - 1].rstrip(b"\r\n") != b_line:
                        lines.append(b_line + LINESEP)
                        msg, changed = "line added", True
                elif lines[index[1]].rstrip(b"\r\n") != b_line:
                    add_at(index[1])
            elif insertbefore and insertbefore != "BOF":
                if index[1] <= 0:
                    if lines[index[1]].rstrip(b"\r\n") != b_line:
                        add_at(index[1])
                elif lines[index[1] - 1].rstrip(b"\r\n") != b_line:
                    add_at(index[1])
        elif lines[index[0]] != new_line:
            lines[index[0]] = new_line
            msg, changed = "line replaced", True
    elif backrefs:
        pass  # Ansible: never build the line without the regexp's groups
    elif insertbefore == "BOF" or insertafter == "BOF":
        add_at(0)
    elif insertafter == "EOF" or index[1] == -1:
        if lines and lines[-1][-1:] not in (b"\n", b"\r"):
            lines.append(LINESEP)
        lines.append(b_line + LINESEP)
        msg, changed = "line added", True
    elif insertafter and index[1] != -1:
        if len(lines) == index[1]:
            if lines[index[1] - 1].rstrip(b"\r\n") != b_line:
                lines.append(b_line + LINESEP)
                msg, changed = "line added", True
        elif b_line != lines[index[1]].rstrip(b"\n\r"):
            add_at(index[1])
    else:
        add_at(index[1])
    return lines, changed, msg


def edit_line_absent(lines: list[bytes], line: str | None = None, regexp: str | None = None,
                     search_string: str | None = None) -> tuple[list[bytes], int]:
    """Return (kept lines, number removed) for ``state=absent``."""
    bre = re.compile(regexp.encode()) if regexp is not None else None
    b_line = (line or "").encode()
    kept, found = [], 0
    for cur in lines:
        if bre is not None:
            hit = bool(bre.search(cur))
        elif search_string is not None:
            hit = search_string.encode() in cur
        else:
            hit = b_line == cur.rstrip(b"\r\n")
        if hit:
            found += 1
        else:
            kept.append(cur)
    return kept, found


def edit_block(original: bytes | None, block: str, marker: str = "# {mark} ANSIBLE MANAGED BLOCK",
               present: bool = True, insertafter: str | None = None, insertbefore: str | None = None,
               marker_begin: str = "BEGIN", marker_end: str = "END", append_newline: bool = False,
               prepend_newline: bool = False) -> bytes:
    """Ansible's blockinfile: the file's new bytes (``original`` None = file absent)."""
    lines = original.splitlines(True) if original else []
    if insertbefore is None and insertafter is None:
        insertafter = "EOF"
    if insertafter not in (None, "EOF"):
        insertre = re.compile(insertafter.encode())
    elif insertbefore not in (None, "BOF"):
        insertre = re.compile(insertbefore.encode())
    else:
        insertre = None
    b_marker = marker.encode()
    marker0 = b_marker.replace(b"{mark}", marker_begin.encode()) + LINESEP
    marker1 = b_marker.replace(b"{mark}", marker_end.encode()) + LINESEP
    b_block = block.encode()
    if present and b_block:
        if not b_block.endswith(LINESEP):
            b_block += LINESEP
        blocklines = [marker0] + b_block.splitlines(True) + [marker1]
    else:
        blocklines = []
    n0 = n1 = None
    for i, cur in enumerate(lines):
        if cur == marker0:
            n0 = i
        if cur == marker1:
            n1 = i
    if None in (n0, n1):
        n0 = None
        if insertre is not None:
            if insertre.flags & re.MULTILINE and original:
                found = insertre.search(original)
                if found:
                    text = original.decode(errors="replace")
                    if insertafter:
                        n0 = text.count("\n", 0, found.end())
                    elif insertbefore:
                        n0 = text.count("\n", 0, found.start())
            else:
                for i, cur in enumerate(lines):
                    if insertre.search(cur):
                        n0 = i
            if n0 is None:
                n0 = len(lines)
            elif insertafter is not None:
                n0 += 1
        elif insertbefore is not None:
            n0 = 0
        else:
            n0 = len(lines)
    elif n0 < n1:
        lines[n0:n1 + 1] = []
    else:
        lines[n1:n0 + 1] = []
        n0 = n1
    if n0 > 0 and not lines[n0 - 1].endswith(LINESEP):
        lines[n0 - 1] += LINESEP
    if prepend_newline and present and n0 != 0 and lines[n0 - 1] != LINESEP:
        lines[n0:n0] = [LINESEP]
        n0 += 1
    lines[n0:n0] = blocklines
    if append_newline and present:
        after = n0 + len(blocklines)
        if after < len(lines) and lines[after] != LINESEP:
            lines[after:after] = [LINESEP]
    return b"".join(lines)


# ---- host side --------------------------------------------------------------------------------------


def validate_lineinfile(args: dict) -> None:
    if _path(args) is None:
        raise ModuleArgError("lineinfile: missing required arguments: path")
    state = args.get("state", "present")
    for a, b in (("insertbefore", "insertafter"), ("regexp", "search_string"), ("backrefs", "search_string")):
        if args.get(a) not in (None, False) and args.get(b) is not None:
            raise ModuleArgError(f"lineinfile: parameters are mutually exclusive: {a}|{b}")
    if state == "present":
        if _bool(args.get("backrefs")) and args.get("regexp", args.get("regex")) is None:
            raise ModuleArgError("lineinfile: regexp is required with backrefs=true")
        if args.get("line", args.get("value")) is None:
            raise ModuleArgError("lineinfile: line is required with state=present")
    elif state == "absent":
        if all(args.get(k) is None for k in ("regexp", "regex", "search_string", "line", "value")):
            raise ModuleArgError("lineinfile: one of line, search_string, or regexp is required with state=absent")
    validate_mode(args.get("mode"))


def validate_blockinfile(args: dict) -> None:
    if _path(args) is None:
        raise ModuleArgError("blockinfile: missing required arguments: path")
    if args.get("insertbefore") is not None and args.get("insertafter") is not None:
        raise ModuleArgError("blockinfile: parameters are mutually exclusive: insertbefore|insertafter")
    validate_mode(args.get("mode"))


async def _load(ctx: ModuleContext, path: str) -> tuple[RemoteStat, RemoteStat, bytes | None]:
    cur, parent = await probe(ctx, [path, os.path.dirname(path) or "."], checksum=None)
    if cur.state == "link" and cur.resolved:
        # like Ansible, edit the file a symlink points to (writing ``path`` would replace the link)
        real = cur.resolved
        cur, parent = await probe(ctx, [real, os.path.dirname(real) or "/"], checksum=None)
    if cur.state == "directory":
        return cur, parent, None
    data = await read_file(ctx, path) if cur.state == "file" else None
    return cur, parent, data


async def _store(ctx: ModuleContext, path: str, cur: RemoteStat, parent: RemoteStat, before: bytes | None,
                 after: bytes, changed: bool, msg: str, args: dict, **extra) -> dict:
    diffs = []
    if ctx.diff:
        diffs.append(content_diff(path, (before or b"").decode(errors="replace"), after.decode(errors="replace")))
        diffs[0]["before_header"] = diffs[0]["after_header"] = f"{path} (content)"
    mode, owner, group = args.get("mode"), args.get("owner"), args.get("group")
    result_extra = dict(extra)
    if changed and not ctx.check_mode:
        if not parent.exists:
            res = await ctx.run(f"mkdir -p -- {q(parent.path)}")
            if res.rc != 0:
                return command_failure(f"creating {parent.path}", res)
        if args.get("validate"):
            from clusterctl.provision.modules.copy import validate_on_host

            bad = await validate_on_host(ctx, after, str(args["validate"]), cur.path)
            if bad is not None:
                return bad
        result_extra.update(await write_file(ctx, cur.path, after, cur, mode=mode, owner=owner, group=group,
                                             backup=_bool(args.get("backup"))))
        return ok(True, msg=msg, path=path, diff=diffs, **result_extra)
    if not cur.exists:
        return ok(changed, msg=msg, path=path, diff=diffs, **result_extra)
    plan = plan_attrs(cur, mode, owner, group)
    if plan.changed:
        msg = (msg + " and " if msg else "") + "ownership, perms or SE linux context changed"
        if ctx.diff:
            diffs.append({"before": plan.before, "after": plan.after, "before_header": f"{path} (file attributes)",
                          "after_header": f"{path} (file attributes)"})
        if not ctx.check_mode:
            res = await ctx.run(" && ".join(plan.commands))
            if res.rc != 0:
                return command_failure(f"setting attributes of {path}", res)
    return ok(changed or plan.changed, msg=msg, path=path, diff=diffs, **result_extra)


async def run_lineinfile(ctx: ModuleContext, args: dict) -> dict:
    path = _path(args)
    assert path is not None
    regexp = args.get("regexp", args.get("regex"))
    line = args.get("line", args.get("value"))
    state = args.get("state") or "present"
    cur, parent, data = await _load(ctx, path)
    if cur.state == "directory":
        return failed(f"Path {path} is a directory !", rc=256)
    if state == "absent":
        if data is None:
            return ok(False, msg="file not present", path=path)
        lines = data.splitlines(True)
        kept, found = edit_line_absent(lines, None if line is None else str(line), regexp, args.get("search_string"))
        msg = f"{found} line(s) removed" if found else ""
        return await _store(ctx, path, cur, parent, data, b"".join(kept), found > 0, msg, args, found=found)
    if data is None and not _bool(args.get("create")):
        return failed(f"Destination {path} does not exist !", rc=257)
    lines = data.splitlines(True) if data else []
    new, changed, msg = edit_line_present(
        lines, str(line), None if regexp is None else str(regexp), args.get("search_string"),
        args.get("insertafter"), args.get("insertbefore"), _bool(args.get("backrefs")), _bool(args.get("firstmatch")))
    return await _store(ctx, path, cur, parent, data, b"".join(new), changed, msg, args)


async def run_blockinfile(ctx: ModuleContext, args: dict) -> dict:
    path = _path(args)
    assert path is not None
    cur, parent, data = await _load(ctx, path)
    if cur.state == "directory":
        return failed(f"Path {path} is a directory !", rc=256)
    present = (args.get("state") or "present") == "present"
    if data is None:
        if not present:
            return ok(False, msg=f"File {path} not present", path=path)
        if not _bool(args.get("create")):
            return failed(f"Path {path} does not exist !", rc=257)
    block = args.get("block", args.get("content")) or ""
    after = edit_block(data, str(block), str(args.get("marker") or "# {mark} ANSIBLE MANAGED BLOCK"), present,
                       args.get("insertafter"), args.get("insertbefore"), str(args.get("marker_begin") or "BEGIN"),
                       str(args.get("marker_end") or "END"), _bool(args.get("append_newline")),
                       _bool(args.get("prepend_newline")))
    if data == after:
        changed, msg = False, ""
    elif data is None:
        changed, msg = True, "File created"
    elif not present or not block:
        changed, msg = True, "Block removed"
    else:
        changed, msg = True, "Block inserted"
    return await _store(ctx, path, cur, parent, data, after, changed, msg, args)
