"""service/systemd on lab hosts (no systemd): the clusterctl supervisor and the SysV path.

The daemon under test is a shell loop that records SIGHUP, so start/stop/restart/reload are
observable through its pid, its process group and a marker file.
"""

from __future__ import annotations

import shlex
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
    await conn.run(f"[ -f /run/clusterctl/{name}.pid ] && kill -9 -$(cat /run/clusterctl/{name}.pid); "
                   f"rm -f /etc/clusterctl/services/{name}.* /run/clusterctl/{name}.pid /var/log/clusterctl/{name}.log")


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
    pid = await pid_of(on_host, name)
    assert pid == first["pid"] and await alive(on_host, pid)
    assert "GREETING=hi" in await on_host(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert "started-as-root" in await on_host(f"cat /var/log/clusterctl/{name}.log")
    assert (await run_module(make_ctx(), "service", args))["changed"] is False

    reloaded = await run_module(make_ctx(), "service", {"name": name, "state": "reloaded"})
    assert reloaded["changed"] and await pid_of(on_host, name) == pid
    await on_host(f"for i in $(seq 50); do [ -s {marker} ] && break; sleep 0.05; done; grep -q reloaded {marker}")

    restarted = await run_module(make_ctx(), "service", {"name": name, "state": "restarted", "startup_grace": 0.1})
    new_pid = await pid_of(on_host, name)
    assert restarted["changed"] and new_pid != pid and not await alive(on_host, pid) and await alive(on_host, new_pid)

    stop = {"name": name, "state": "stopped"}
    assert (await run_module(make_ctx(check_mode=True), "service", stop))["changed"] and await alive(on_host, new_pid)
    stopped = await run_module(make_ctx(), "service", stop)
    assert stopped["changed"] and stopped["state"] == "stopped" and not await alive(on_host, new_pid)
    # the supervisor waits for the group (zombies included) but at most 10 s after its SIGKILL; on a
    # very busy machine the host's init may reap the last one a little later: a survivor stays
    group = f"ps -eo pgid= | grep -cw {new_pid} || true"
    await on_host(f"for i in $(seq 300); do [ \"$({group})\" = 0 ] && break; sleep 0.1; done")
    assert (await on_host(group)).strip() == "0", "children of the daemon survived"
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


async def test_supervisor_reports_a_daemon_that_dies_at_start(make_ctx, on_host, svc):
    name, _ = svc
    await define(make_ctx, name, "sh -c 'echo boom-in-log >&2; exit 3'")
    res = await run_module(make_ctx(), "service", {"name": name, "state": "started", "startup_grace": 0.2})
    assert res["failed"] and "boom-in-log" in res["msg"]


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
