"""command, shell, raw, script on a real lab host; no shell injection through any argument."""

from __future__ import annotations

import pytest

from clusterctl.provision.modules import ModuleArgError, get_module, split_free_form
from clusterctl.provision.modules.results import NO_LOG_MSG
from tests.provision.modules.conftest import run_module

pytestmark = pytest.mark.lab

EVIL = "'; touch /tmp/pwned-{tag} #"
EVIL2 = "$(touch /tmp/pwned2-{tag})`touch /tmp/pwned3-{tag}`"


def test_free_form_split_like_ansible():
    assert split_free_form("ls -l chdir=/tmp creates=/x") == {"_raw_params": "ls -l", "chdir": "/tmp", "creates": "/x"}
    assert split_free_form("echo a=b 'c d' removes='/a b'") == {"_raw_params": "echo a=b 'c d'", "removes": "/a b"}
    with pytest.raises(ModuleArgError):
        get_module("command").check_args({})
    with pytest.raises(ModuleArgError):
        get_module("nosuchmodule")
    with pytest.raises(KeyError):
        get_module("nosuchmodule")


async def test_command_runs_without_a_shell(make_ctx, scratch, on_host):
    res = await run_module(make_ctx(), "command", {"_raw_params": f"printf '%s|' 'a b' '$HOME' ';' chdir={scratch}"} | split_free_form(f"printf '%s|' 'a b' '$HOME' ';' chdir={scratch}"))
    assert res["changed"] and res["rc"] == 0 and res["stdout"] == "a b|$HOME|;|"
    assert res["cmd"] == ["printf", "%s|", "a b", "$HOME", ";"]
    res = await run_module(make_ctx(), "command", {"argv": ["sh", "-c", "pwd; exit 3"], "chdir": scratch})
    assert res["failed"] and res["rc"] == 3 and res["stdout_lines"] == [scratch] and res["msg"] == "non-zero return code"


async def test_command_creates_removes_and_check_mode(make_ctx, scratch, on_host):
    args = {"_raw_params": f"touch {scratch}/made", "creates": f"{scratch}/made"}
    checked = await run_module(make_ctx(check_mode=True), "command", args)
    assert checked["changed"] and not checked.get("skipped")
    assert (await on_host(f"[ -e {scratch}/made ] && echo yes || echo no")).strip() == "no"
    first = await run_module(make_ctx(), "command", args)
    second = await run_module(make_ctx(), "command", args)
    assert first["changed"] and second["changed"] is False and "exists" in second["msg"]
    relative = await run_module(make_ctx(), "command", {"_raw_params": "false", "creates": "made", "chdir": scratch})
    assert relative["changed"] is False and not relative["failed"]
    glob = await run_module(make_ctx(), "command", {"_raw_params": "false", "creates": f"{scratch}/ma*"})
    assert glob["changed"] is False and glob["rc"] == 0
    gone = await run_module(make_ctx(), "command", {"_raw_params": "false", "removes": f"{scratch}/none"})
    assert gone["changed"] is False
    plain = await run_module(make_ctx(check_mode=True), "shell", {"_raw_params": f"touch {scratch}/x"})
    assert plain["skipped"] and plain["changed"] is False


async def test_shell_stdin_env_and_executable(make_ctx, scratch):
    ctx = make_ctx(environment={"GREETING": "hi there"})
    res = await run_module(ctx, "shell", {"_raw_params": "read x; echo \"$GREETING $x\" | tr a-z A-Z", "stdin": "you"})
    assert res["stdout"] == "HI THERE YOU"
    res = await run_module(make_ctx(), "shell", {"_raw_params": "echo ${BASH_VERSION:+bash}", "executable": "/bin/bash"})
    assert res["stdout"] == "bash"
    res = await run_module(make_ctx(), "shell", {"cmd": "echo out; echo err >&2; exit 2"})
    assert res["failed"] and res["stderr_lines"] == ["err"] and res["stdout"] == "out"


async def test_ping(make_ctx):
    assert await run_module(make_ctx(), "ansible.builtin.ping", {}) == {"changed": False, "failed": False, "ping": "pong"}
    assert (await run_module(make_ctx(), "ping", {"data": "crash"}))["failed"]


async def test_raw_and_script(make_ctx, scratch, local, on_host):
    res = await run_module(make_ctx(), "raw", {"_raw_params": "echo raw-$((1+1))"})
    assert res["changed"] and res["stdout"].strip() == "raw-2"
    assert (await run_module(make_ctx(check_mode=True), "raw", {"_raw_params": "true"}))["skipped"]
    (local / "files" / "hello.sh").write_text("#!/bin/sh\necho \"args:$1:$2\"; pwd; touch \"$2\"\n")
    args = split_free_form(f"hello.sh 'one two' {scratch}/by-script creates={scratch}/by-script chdir={scratch}")
    res = await run_module(make_ctx(), "script", args)
    assert res["changed"] and res["stdout_lines"] == [f"args:one two:{scratch}/by-script", scratch]
    assert (await run_module(make_ctx(), "script", args))["changed"] is False
    assert (await on_host("ls -A /tmp | grep -c clusterctl-script || true")).strip() == "0"
    missing = await run_module(make_ctx(), "script", {"_raw_params": "nope.sh"})
    assert missing["failed"] and "nope.sh" in missing["msg"]


@pytest.mark.parametrize("module,args", [
    ("command", {"_raw_params": "echo {evil}"}),
    ("command", {"argv": ["echo", "{evil}", "{evil2}"]}),
    ("command", {"_raw_params": "true", "creates": "/tmp/{evil}", "chdir": "/tmp"}),
    ("copy", {"content": "{evil}{evil2}", "dest": "{d}/{evil}"}),
    ("copy", {"content": "x", "dest": "{d}/{evil2}", "mode": "0644", "backup": True}),
    ("file", {"path": "{d}/{evil}", "state": "directory"}),
    ("file", {"path": "{d}/{evil2}", "state": "link", "src": "{evil}", "force": True}),
    ("file", {"path": "{d}/{evil2}", "state": "touch"}),
    ("lineinfile", {"path": "{d}/{evil}", "line": "{evil2}", "create": True}),
    ("blockinfile", {"path": "{d}/{evil2}", "block": "{evil}", "create": True, "marker": "# {evil} {mark}"}),
    ("stat", {"path": "{d}/{evil}"}),
    ("slurp", {"src": "{d}/{evil}"}),
    ("wait_for", {"path": "{d}/{evil}", "timeout": 0, "state": "absent"}),
    ("user", {"name": "{evil}", "state": "absent"}),
    ("group", {"name": "{evil2}", "state": "absent"}),
    ("service", {"name": "{evil}", "state": "stopped"}),
    ("package", {"name": ["{evil}"], "state": "absent"}),
])
async def test_no_injection_through_arguments(module, args, make_ctx, scratch, on_host):
    tag = scratch.rsplit("-", 1)[1]
    evil, evil2 = EVIL.format(tag=tag), EVIL2.format(tag=tag)

    def fill(v):
        if isinstance(v, str):
            return v.replace("{evil}", evil).replace("{evil2}", evil2).replace("{d}", scratch)
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    await run_module(make_ctx(), module, {k: fill(v) for k, v in args.items()})
    assert (await on_host(f"ls /tmp | grep -c 'pwned.*{tag}' || true")).strip() == "0", "a shell ran an argument"


async def test_no_log_hides_secrets_in_messages(make_ctx, scratch):
    secret = "s3cr3t-value"
    res = await run_module(make_ctx(no_log=True), "command", {"_raw_params": f"sh -c 'echo {secret} >&2; exit 1'"})
    assert res["failed"] and secret not in res["msg"] and res["msg"] == NO_LOG_MSG
    res = await run_module(make_ctx(no_log=True), "copy", {"content": secret, "dest": f"{scratch}/nodir/x"})
    assert res["failed"] and secret not in str(res)
    res = await run_module(make_ctx(no_log=True, diff=True), "copy", {"content": secret, "dest": f"{scratch}/s"})
    assert res["changed"] and secret not in str(res)
