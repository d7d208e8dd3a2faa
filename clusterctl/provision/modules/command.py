"""``command``, ``shell``, ``raw`` and ``script``: run something on the host and report what it said.

``command`` never lets a shell see its arguments: the free-form string is split like Ansible
(``shlex.split``) and every word is re-quoted, so ``$(...)`` or ``;`` in a variable stays a literal
argument. ``shell`` hands its string to ``sh -c`` (or ``executable``) on purpose. ``creates`` /
``removes`` make a run idempotent (checked with one ``test -e`` glob before running). Check mode:
a command is not run; like Ansible the result is skipped unless creates/removes decided.
``raw`` runs the string as is and is skipped in check mode. ``script`` uploads a local script to a
private temp folder over SFTP, runs it with its arguments and removes it.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime

from clusterctl.provision.modules.context import ModuleArgError, ModuleContext
from clusterctl.provision.modules.results import command_fields, failed, ok, skipped
from clusterctl.provision.modules.remote_file import upload

q = shlex.quote

# the k=v words Ansible lifts out of a free-form command line (everything else stays in the command)
FREE_FORM_KEYS = ("chdir", "creates", "removes", "executable", "stdin", "stdin_add_newline",
                  "strip_empty_ends", "warn")
_KV = re.compile(r"""(?:(?<=\s)|^)(%s)=("(?:[^"\\]|\\.)*"|'[^']*'|\S+)""" % "|".join(FREE_FORM_KEYS))


def split_free_form(text: str) -> dict:
    """``'ls -l chdir=/tmp creates=/x'`` -> ``{'_raw_params': 'ls -l', 'chdir': '/tmp', 'creates': '/x'}``."""
    args: dict = {}

    def take(m: re.Match) -> str:
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = shlex.split(value)[0]
        args[m.group(1)] = value
        return ""

    raw = _KV.sub(take, text).strip()
    if raw:
        args["_raw_params"] = raw
    return args


def _bool(value, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y")
    return bool(value)


def validate_command(args: dict) -> None:
    given = [k for k in ("_raw_params", "cmd", "argv") if args.get(k) not in (None, "", [])]
    if not given:
        raise ModuleArgError("no command given (free-form, cmd or argv)")
    if len(given) > 1:
        raise ModuleArgError(f"parameters are mutually exclusive: {'|'.join(given)}")


def validate_script(args: dict) -> None:
    if not (args.get("_raw_params") or args.get("cmd")):
        raise ModuleArgError("script: no script given (free-form or cmd)")


async def _guard(ctx: ModuleContext, creates: str | None, removes: str | None, chdir: str | None = None) -> str | None:
    """Ansible's creates/removes: a message when the run must be left out, else None."""
    if not creates and not removes:
        return None
    verb = "Would" if ctx.check_mode else "Did"
    # a glob left unquoted on purpose: only the pattern's words are quoted, not its wildcards
    checks = []
    for name, pattern in (("creates", creates), ("removes", removes)):
        if pattern:
            checks.append(f"set -- {_glob_words(pattern)}; if [ -e \"$1\" ] || [ -L \"$1\" ]; then echo {name}=1; else echo {name}=0; fi")
    res = await ctx.run("; ".join(checks), cwd=chdir or None)  # relative paths count from chdir, as in Ansible
    found = dict(line.split("=", 1) for line in res.stdout.split() if "=" in line)
    if creates and found.get("creates") == "1":
        return f"{verb} not run command since '{creates}' exists"
    if removes and found.get("removes") == "0":
        return f"{verb} not run command since '{removes}' does not exist"
    return None


def _glob_words(pattern: str) -> str:
    """Quote a glob so only ``* ? [ ]`` stay special for the shell."""
    out = []
    for part in re.split(r"([*?]|\[[^\]/]*\])", pattern):
        if not part:
            continue
        if part in ("*", "?") or (part.startswith("[") and part.endswith("]")):
            out.append(part)
        else:
            out.append(q(part))
    return "".join(out)


def _command_line(args: dict, shell: bool) -> tuple[str, object]:
    if args.get("argv"):
        argv = [str(a) for a in args["argv"]]
        return " ".join(q(a) for a in argv), argv
    text = str(args.get("_raw_params") or args.get("cmd"))
    if shell:
        executable = args.get("executable")
        if executable:
            return f"exec {q(str(executable))} -c {q(text)}", text
        return text, text
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ModuleArgError(f"cannot split command {text!r}: {exc}") from exc
    return " ".join(q(a) for a in argv), argv


async def _run_and_report(ctx: ModuleContext, line: str, shown_cmd, args: dict) -> dict:
    stdin = args.get("stdin")
    data = None
    if stdin is not None:
        data = str(stdin) + ("\n" if _bool(args.get("stdin_add_newline"), True) else "")
    start = datetime.now()
    res = await ctx.run(line, stdin=data, cwd=args.get("chdir") or None)
    end = datetime.now()
    fields = command_fields(res, strip=_bool(args.get("strip_empty_ends"), True))
    result = ok(True, cmd=shown_cmd, start=str(start), end=str(end), delta=str(end - start), msg="", **fields)
    if res.rc != 0:
        result["failed"] = True
        result["msg"] = "non-zero return code"
    return result


async def _run_command_like(ctx: ModuleContext, args: dict, shell: bool) -> dict:
    line, shown = _command_line(args, shell)
    why_not = await _guard(ctx, args.get("creates"), args.get("removes"), args.get("chdir"))
    if why_not:
        what = args.get("creates") if "exists" in why_not else args.get("removes")
        return ok(False, cmd=shown, rc=0, msg=why_not, stdout=f"skipped, since {what} {'exists' if 'exists' in why_not else 'does not exist'}",
                  stderr="", stdout_lines=[], stderr_lines=[])
    if ctx.check_mode:
        if args.get("creates") is None and args.get("removes") is None:
            return skipped("Command would have run if not in check mode", cmd=shown, rc=0)
        return ok(True, cmd=shown, rc=0, msg="Command would have run if not in check mode")
    return await _run_and_report(ctx, line, shown, args)


async def run_command(ctx: ModuleContext, args: dict) -> dict:
    return await _run_command_like(ctx, args, shell=bool(args.get("_uses_shell")))


async def run_shell(ctx: ModuleContext, args: dict) -> dict:
    return await _run_command_like(ctx, args, shell=True)


async def run_raw(ctx: ModuleContext, args: dict) -> dict:
    if ctx.check_mode:
        return skipped("raw does not support check mode")
    text = str(args.get("_raw_params") or args.get("cmd") or "")
    executable = args.get("executable")
    line = f"exec {q(str(executable))} -c {q(text)}" if executable else text
    res = await ctx.run(line)
    fields = command_fields(res, strip=False)
    result = ok(True, **fields)
    if res.rc != 0:
        result.update(failed=True, msg="non-zero return code")
    return result


async def run_script(ctx: ModuleContext, args: dict) -> dict:
    text = str(args.get("_raw_params") or args.get("cmd"))
    try:
        words = shlex.split(text)
    except ValueError as exc:
        return failed(f"cannot split script line {text!r}: {exc}")
    local = ctx.local_file("files", words[0])
    why_not = await _guard(ctx, args.get("creates"), args.get("removes"), args.get("chdir"))
    if why_not:
        return ok(False, rc=0, msg=why_not, stdout="", stderr="", stdout_lines=[], stderr_lines=[])
    if ctx.check_mode:
        if args.get("creates") is None and args.get("removes") is None:
            return skipped("script would have run if not in check mode")
        return ok(True, msg="script would have run if not in check mode")
    mk = await ctx.run("umask 077; mktemp -d /tmp/.clusterctl-script.XXXXXXXX")
    if mk.rc != 0:
        return failed(f"cannot make a temp folder for the script: {mk.stderr.strip()}")
    folder = mk.stdout.strip()
    remote = f"{folder}/{local.name}"
    try:
        await upload(ctx, local.read_bytes(), remote)
        runner = f"{q(str(args['executable']))} " if args.get("executable") else ""
        prep = "" if runner else f"chmod 700 {q(remote)} && "
        line = prep + runner + " ".join(q(w) for w in [remote] + words[1:])
        result = await _run_and_report(ctx, line, text, args)
    finally:
        await ctx.run(f"rm -rf -- {q(folder)}")
    return result


async def run_ping(ctx: ModuleContext, args: dict) -> dict:
    """``ping``: the host runs a shell for us (Ansible's ping proves the module path works)."""
    data = str(args.get("data", "pong"))
    if data == "crash":
        return failed("boom")
    res = await ctx.run("true")
    if res.rc != 0:
        return failed(f"the host could not run a command: {res.stderr.strip()}")
    return ok(False, ping=data)
