"""service/systemd on lab hosts (no systemd): the clusterctl supervisor and the SysV path.

The daemon under test is a shell loop that records SIGHUP, so start/stop/restart/reload are
observable through its pid, its process group and a marker file. Under the supervisor it runs as
the child of a keeper that restarts it when it exits (``CC_RESTART_SEC``, small here); every
process of a service carries ``CLUSTERCTL_SERVICE=NAME``, so "nothing of it is left" is checked
by scanning the host's /proc for that tag. Waits poll for conditions with generous deadlines.
"""

from __future__ import annotations

import asyncio
import shlex
import time
import uuid

import pytest

from tests.provision.modules.conftest import run_module

pytestmark = pytest.mark.lab

DAEMON = "trap 'echo reloaded >> {marker}' HUP; echo started-as-$(id -un); while :; do sleep 0.1; done"


@pytest.fixture
async def svc(on_host, scratch, conn):
    name = f"ccsvc-{uuid.uuid4().hex[:6]}"
    marker = f"{scratch}/hup"
    yield name, marker
    await conn.run(f"for f in /run/clusterctl/{name}.keeper /run/clusterctl/{name}.pid; do "
                   f"[ -s $f ] && kill -9 -$(cat $f) $(cat $f); done; {TAGGED.format(name=name)} | "
                   f"while read p g; do kill -9 $p; done; "
                   f"rm -f /etc/clusterctl/services/{name}.* /run/clusterctl/{name}.* /var/log/clusterctl/{name}.log")


async def define(make_ctx, name: str, command: str, **extra: str) -> None:
    await run_module(make_ctx(), "file", {"path": "/etc/clusterctl/services", "state": "directory"})
    lines = [f"CC_COMMAND={shlex.quote(command)}"] + [f"{k}={shlex.quote(v)}" for k, v in extra.items()]
    res = await run_module(make_ctx(), "copy", {"content": "\n".join(lines) + "\n", "dest": f"/etc/clusterctl/services/{name}.env"})
    assert not res["failed"], res


async def pid_of(on_host, name: str) -> int | None:
    out = (await on_host(f"cat /run/clusterctl/{name}.pid 2>/dev/null || true")).strip()
    return int(out) if out else None


async def alive(on_host, pid: int) -> bool:
    return (await on_host(f"kill -0 {pid} 2>/dev/null && echo y || echo n")).strip() == "y"


# "PID PGID" of every live process tagged as service {name} (zombies have no environ: not listed)
TAGGED = ("for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qx CLUSTERCTL_SERVICE={name} "
          "&& echo ${{p#/proc/}} $(sed 's/.*) //' $p/stat 2>/dev/null | cut -d' ' -f3); done; true")


async def tagged(on_host, name: str) -> list[tuple[int, int]]:
    out = await on_host(TAGGED.format(name=name))
    return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines() if len(line.split()) == 2)]


async def log_of(on_host, name: str) -> str:
    return await on_host(f"cat /var/log/clusterctl/{name}.log 2>/dev/null; true")


async def wait_until(check, what: str, timeout: float = 60.0):
    """Poll ``check()`` (async) until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.2)


async def test_supervisor_start_stop_restart_reload_enable(make_ctx, on_host, svc):
    name, marker = svc
    await define(make_ctx, name, f"sh -c {shlex.quote(DAEMON.format(marker=marker))}", GREETING="hi")
    args = {"name": name, "state": "started", "startup_grace": 0.1}

    before = await on_host("ls -la --time-style=full-iso /etc/clusterctl/services /run/clusterctl 2>&1; true")
    checked = await run_module(make_ctx(check_mode=True, diff=True), "service", args)
    assert await on_host("ls -la --time-style=full-iso /etc/clusterctl/services /run/clusterctl 2>&1; true") == before
    assert checked["changed"] and checked["manager"] == "clusterctl" and await pid_of(on_host, name) is None
    assert checked["diff"][0]["before"]["state"] == "stopped" and checked["diff"][0]["after"]["state"] == "started"

    first = await run_module(make_ctx(), "service", args)
    assert first["changed"] and first["state"] == "started", first
    pid, keeper = await pid_of(on_host, name), first["keeper_pid"]
    assert pid == first["pid"] and keeper != pid and first["restarts"] == 0 and await alive(on_host, pid)
    assert {g for _, g in await tagged(on_host, name)} == {keeper}, "the daemon runs in its keeper's group"
    assert "GREETING=hi" in await on_host(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    # the daemon's first line says its HUP trap is set (before it, a HUP would end the shell)
    await wait_until(lambda: _logged(on_host, name, "started-as-root"), "the daemon's first line")
    assert (await run_module(make_ctx(), "service", args))["changed"] is False

    reloaded = await run_module(make_ctx(), "service", {"name": name, "state": "reloaded"})
    assert reloaded["changed"] and await pid_of(on_host, name) == pid
    await on_host(f"for i in $(seq 50); do [ -s {marker} ] && break; sleep 0.05; done; grep -q reloaded {marker}")

    restarted = await run_module(make_ctx(), "service", {"name": name, "state": "restarted", "startup_grace": 0.1})
    new_pid, new_keeper = await pid_of(on_host, name), restarted["keeper_pid"]
    assert restarted["changed"] and new_pid != pid and not await alive(on_host, pid) and await alive(on_host, new_pid)
    assert new_keeper != keeper and not await alive(on_host, keeper) and restarted["restarts"] == 0
    assert {g for _, g in await tagged(on_host, name)} == {new_keeper}, "a process of the old keeper's group is left"

    stop = {"name": name, "state": "stopped"}
    assert (await run_module(make_ctx(check_mode=True), "service", stop))["changed"] and await alive(on_host, new_pid)
    stopped = await run_module(make_ctx(), "service", stop)
    assert stopped["changed"] and stopped["state"] == "stopped" and not await alive(on_host, new_pid)
    # the supervisor waits for the group (zombies included) but at most 10 s after its SIGKILL; on a
    # very busy machine the host's init may reap the last one a little later: a survivor stays
    group = f"ps -eo pgid= | grep -cw {new_keeper} || true"
    await on_host(f"for i in $(seq 300); do [ \"$({group})\" = 0 ] && break; sleep 0.1; done")
    assert (await on_host(group)).strip() == "0", "children of the daemon survived"
    assert await tagged(on_host, name) == []
    assert (await run_module(make_ctx(), "service", stop))["changed"] is False

    enable = {"name": name, "enabled": True}
    assert (await run_module(make_ctx(), "service", enable))["changed"]
    assert (await run_module(make_ctx(), "service", enable))["changed"] is False
    await on_host("sh /etc/clusterctl/services/.supervisor start-enabled - - 0 0.1")
    assert await alive(on_host, await pid_of(on_host, name))
    assert (await run_module(make_ctx(), "service", {"name": name, "enabled": False, "state": "stopped"}))["changed"]
    assert (await on_host(f"[ -e /etc/clusterctl/services/{name}.enabled ] && echo y || echo n")).strip() == "n"


async def test_supervisor_ignores_a_recycled_pid_and_runs_as_user(make_ctx, on_host, svc):
    name, _ = svc
    await define(make_ctx, name, "sleep 300", CC_USER="nobody", CC_DIR="/tmp")
    await on_host(f"mkdir -p /run/clusterctl && echo 1 > /run/clusterctl/{name}.pid")  # pid 1 is alive, not ours
    res = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.1})
    assert res["changed"] and res["pid"] != 1
    assert (await on_host(f"stat -c %U /proc/{res['pid']}")).strip() == "nobody"
    assert (await on_host(f"readlink /proc/{res['pid']}/cwd")).strip() == "/tmp"


@pytest.mark.parametrize("restart_sec", ["2", "0"])
async def test_supervisor_reports_a_daemon_that_dies_at_start(make_ctx, on_host, svc, restart_sec):
    """A bad command line fails ``started`` with the log's tail — also when the keeper restarts it
    at once, over and over, within the grace — and leaves no keeper behind to restart it quietly."""
    name, _ = svc
    await define(make_ctx, name, "sh -c 'echo boom-in-log >&2; exit 3'", CC_RESTART_SEC=restart_sec)
    res = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.5})
    assert res["failed"] and "boom-in-log" in res["msg"] and "exited right after start" in res["msg"], res
    assert await tagged(on_host, name) == []
    await asyncio.sleep(1.0)  # longer than a restart delay of 0: a keeper left behind would have started it again
    assert await tagged(on_host, name) == []
    starts = (await log_of(on_host, name)).count("boom-in-log")
    await asyncio.sleep(1.0)
    assert (await log_of(on_host, name)).count("boom-in-log") == starts, "restarted after the failed start"
    assert (await run_module(make_ctx(), "service", {"name": name, "state": "stopped"}))["changed"] is False


@pytest.mark.parametrize("setting, value, says", [
    ("CC_RESTART", "sometimes", "CC_RESTART must be always or no"),
    ("CC_RESTART_SEC", "2s", "CC_RESTART_SEC must be a number of seconds"),
])
async def test_supervisor_refuses_a_bad_restart_setting(make_ctx, on_host, svc, setting, value, says):
    name, _ = svc
    await define(make_ctx, name, "sleep 300", **{setting: value})
    res = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.1})
    assert res["failed"] and says in res["msg"] and value in res["msg"], res
    assert await tagged(on_host, name) == []


async def test_supervisor_restarts_a_killed_daemon_until_stopped(make_ctx, on_host, svc):
    """Restart=always without systemd: SIGKILL the daemon, the keeper starts a new one after
    CC_RESTART_SEC and says so in the log; reload reaches the new daemon; a stop ends it for good."""
    name, marker = svc
    await define(make_ctx, name, f"sh -c {shlex.quote(DAEMON.format(marker=marker))}", CC_RESTART_SEC="0.5")
    args = {"name": name, "state": "started", "startup_grace": 0.1}
    first = await run_module(make_ctx(), "service", args)
    assert first["changed"] and first["restarts"] == 0, first
    old, keeper = first["pid"], first["keeper_pid"]
    assert marker not in await on_host(f"tr '\\0' ' ' < /proc/{keeper}/cmdline"), "pkill -f DAEMON would hit the keeper"
    await wait_until(lambda: _logged(on_host, name, "started-as-root"), "the daemon's first line")

    await on_host(f"kill -9 {old}")

    async def replaced():
        pid = await pid_of(on_host, name)
        return pid if pid not in (None, old) and await alive(on_host, pid) else None
    new = await wait_until(replaced, "a new daemon after SIGKILL")
    assert not await alive(on_host, old)
    await wait_until(lambda: alive(on_host, new), "the new daemon")
    await wait_until(lambda: _logged(on_host, name, "started-as-root", times=2), "the new daemon's first line")
    log = await log_of(on_host, name)
    assert f"clusterctl-service: {name} exited with status 137; restarting in 0.5 s" in log, log

    async def status():  # the keeper counts the start just after it records the new pid
        res = await run_module(make_ctx(), "service", args)
        return res if res.get("restarts") == 1 or res["changed"] else None
    again = await wait_until(status, "the status counting one restart")
    assert again["changed"] is False and again["state"] == "started", again
    assert (again["pid"], again["keeper_pid"], again["restarts"]) == (new, keeper, 1), again

    await run_module(make_ctx(), "service", {"name": name, "state": "reloaded"})
    await wait_until(lambda: on_host(f"cat {marker} 2>/dev/null; true"), "SIGHUP at the restarted daemon")

    stopped = await run_module(make_ctx(), "service", {"name": name, "state": "stopped"})
    assert stopped["changed"] and stopped["state"] == "stopped" and "pid" not in stopped, stopped
    await wait_until(lambda: _none_left(on_host, name), "no process of the service after stop", timeout=30)
    log = await log_of(on_host, name)
    await asyncio.sleep(2.0)  # four restart delays: a keeper still at work would have started it again
    assert await tagged(on_host, name) == [] and await pid_of(on_host, name) is None
    assert await log_of(on_host, name) == log, "something was started after the stop"


async def _none_left(on_host, name: str) -> bool:
    return await tagged(on_host, name) == []


async def test_stopping_during_the_restart_delay_keeps_it_down(make_ctx, on_host, svc):
    """The stop comes while the keeper waits out CC_RESTART_SEC after a crash: no restart follows."""
    name, marker = svc
    await define(make_ctx, name, f"sh -c {shlex.quote(DAEMON.format(marker=marker))}", CC_RESTART_SEC="3")
    first = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.1})
    await on_host(f"kill -9 {first['pid']}")
    await wait_until(lambda: _logged(on_host, name, "restarting in 3 s"), "the keeper's restart line")
    stopped = await run_module(make_ctx(), "service", {"name": name, "state": "stopped"})
    assert stopped["changed"] and stopped["state"] == "stopped", stopped
    await wait_until(lambda: _none_left(on_host, name), "no process of the service after stop", timeout=30)
    log = await log_of(on_host, name)
    await asyncio.sleep(4.0)  # past the keeper's restart delay
    assert await tagged(on_host, name) == [] and await log_of(on_host, name) == log


async def _logged(on_host, name: str, text: str, times: int = 1) -> bool:
    return (await log_of(on_host, name)).count(text) >= times


async def test_restart_no_keeps_an_exited_daemon_down(make_ctx, on_host, svc):
    name, marker = svc
    await define(make_ctx, name, f"sh -c {shlex.quote(DAEMON.format(marker=marker))}", CC_RESTART="no", CC_RESTART_SEC="0.2")
    args = {"name": name, "state": "started", "startup_grace": 0.1}
    first = await run_module(make_ctx(), "service", args)
    assert first["changed"] and first["state"] == "started", first
    await wait_until(lambda: _logged(on_host, name, "started-as-root"), "the daemon's first line")
    await on_host(f"kill -9 {first['pid']}")
    await wait_until(lambda: _none_left(on_host, name), "keeper and daemon gone after the daemon was killed")
    await asyncio.sleep(1.0)  # five restart delays
    assert await tagged(on_host, name) == []
    log = await log_of(on_host, name)
    assert f"clusterctl-service: {name} exited with status 137; not restarting (CC_RESTART=no)" in log, log
    assert log.count("started-as-root") == 1, log
    assert (await run_module(make_ctx(), "service", {"name": name, "state": "stopped"}))["changed"] is False
    again = await run_module(make_ctx(), "service", args)  # down, so started starts it
    assert again["changed"] and again["pid"] != first["pid"] and await alive(on_host, again["pid"])


async def test_a_daemon_from_before_the_keeper_is_adopted_not_doubled(make_ctx, on_host, svc):
    """A host upgraded from the supervisor without keeper: its daemon leads its own group and only
    NAME.pid names it. ``started`` must not start a second copy; ``stopped`` ends it."""
    name, _ = svc
    await define(make_ctx, name, "sleep 300")
    await on_host(f"mkdir -p /run/clusterctl /var/log/clusterctl; CLUSTERCTL_SERVICE={name} setsid sh -c "
                  f"'echo $$ > /run/clusterctl/{name}.pid; exec sleep 300' </dev/null >/dev/null 2>&1 &")
    legacy = await wait_until(lambda: pid_of(on_host, name), "the old-style daemon's pid file")
    res = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.1})
    assert res["changed"] is False and res["pid"] == legacy, res
    assert [p for p, _ in await tagged(on_host, name)] == [legacy]
    stopped = await run_module(make_ctx(), "service", {"name": name, "state": "stopped"})
    assert stopped["changed"] and not await alive(on_host, legacy)


async def test_sysv_init_script_and_unknown_service(make_ctx, on_host, scratch):
    name = f"ccinit-{uuid.uuid4().hex[:6]}"
    script = (f"#!/bin/sh\ncase $1 in start) touch {scratch}/on;; stop) rm -f {scratch}/on;; restart) touch {scratch}/on {scratch}/re;;"
              f" status) [ -e {scratch}/on ];; *) exit 3;; esac\n")
    try:
        assert not (await run_module(make_ctx(), "copy", {"content": script, "dest": f"/etc/init.d/{name}", "mode": "0755"}))["failed"]
        res = await run_module(make_ctx(), "service", {"name": name, "state": "started"})
        assert res["changed"] and res["manager"] == "sysv" and res["state"] == "started"
        assert (await run_module(make_ctx(), "service", {"name": name, "state": "started"}))["changed"] is False
        assert (await run_module(make_ctx(), "service", {"name": name, "state": "stopped"}))["changed"]
        assert (await on_host(f"[ -e {scratch}/on ] && echo y || echo n")).strip() == "n"
    finally:
        await on_host(f"rm -f /etc/init.d/{name}")
    missing = await run_module(make_ctx(), "systemd", {"name": "no-such-svc", "state": "started"})
    assert missing["failed"] and "could not find" in missing["msg"]


FAKE_SYSTEMCTL = r"""#!/bin/sh
# a stand-in for systemctl (the lab has no systemd): unit state kept in files, every call logged
d=/var/lib/fake-systemd; mkdir -p $d; echo "$*" >> $d/calls
cmd=$1; unit=$2
case $cmd in
  is-active) [ -e $d/$unit.active ] && { echo active; exit 0; } || { echo inactive; exit 3; } ;;
  is-enabled) [ -e $d/$unit.enabled ] && { echo enabled; exit 0; } || { echo disabled; exit 1; } ;;
  start|restart|reload) touch $d/$unit.active ;;
  stop) rm -f $d/$unit.active ;;
  enable) touch $d/$unit.enabled ;;
  disable) rm -f $d/$unit.enabled ;;
  daemon-reload) : ;;
  *) exit 1 ;;
esac
"""


async def test_systemd_branch_with_a_stand_in_systemctl(lab_factory, tmp_path):
    """The systemd path's decisions and calls, on a private host given /run/systemd/system and a
    recording systemctl (the machine has no systemd to run for real)."""
    from clusterctl.provision.modules import ModuleContext
    from tests.provision.modules.conftest import open_conn

    lab = lab_factory(1)
    conn = await open_conn(lab)
    try:
        await conn.put(FAKE_SYSTEMCTL.encode(), "/usr/local/bin/systemctl", mode=0o755)
        assert (await conn.run("mkdir -p /run/systemd/system")).rc == 0
        ctx = ModuleContext(conn=conn, host="h1")
        args = {"name": "etcd", "state": "started", "enabled": True, "daemon_reload": True}
        checked = await run_module(ModuleContext(conn=conn, host="h1", check_mode=True), "systemd", args)
        assert checked["changed"] and checked["manager"] == "systemd"
        assert (await conn.run("cat /var/lib/fake-systemd/calls")).stdout.split("\n")[:2] == ["is-active etcd.service", "is-enabled etcd.service"]
        first = await run_module(ctx, "systemd", args)
        assert first["changed"] and first["state"] == "started" and first["enabled"] is True
        calls = (await conn.run("grep -v '^is-' /var/lib/fake-systemd/calls")).stdout.split("\n")
        assert calls[:3] == ["daemon-reload", "start etcd.service", "enable etcd.service"]
        again = await run_module(ctx, "service", {"name": "etcd", "state": "started", "enabled": True})
        assert again["changed"] is False
        assert (await run_module(ctx, "service", {"name": "etcd.socket", "state": "stopped"}))["changed"] is False
        assert (await run_module(ctx, "service", {"name": "etcd", "state": "restarted"}))["changed"]
        stopped = await run_module(ctx, "service", {"name": "etcd", "state": "stopped", "enabled": False})
        assert stopped["changed"] and stopped["state"] == "stopped" and stopped["enabled"] is False
        assert (await conn.run("tail -n 4 /var/lib/fake-systemd/calls | grep -v '^is-'")).stdout.split() == ["stop", "etcd.service", "disable", "etcd.service"]
    finally:
        await conn.close()


async def test_a_daemon_whose_keeper_was_killed_still_counts_and_stops(make_ctx, on_host, svc):
    name, _ = svc
    await define(make_ctx, name, "sleep 300")
    first = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.1})
    await on_host(f"kill -9 {first['keeper_pid']}")
    await wait_until(lambda: _gone(on_host, first["keeper_pid"]), "the killed keeper")
    again = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.1})
    assert again["changed"] is False and again["pid"] == first["pid"], again  # never a second copy
    stopped = await run_module(make_ctx(), "service", {"name": name, "state": "stopped"})
    assert stopped["changed"] and not await alive(on_host, first["pid"]) and await tagged(on_host, name) == []


async def _gone(on_host, pid: int) -> bool:
    return not await alive(on_host, pid)
