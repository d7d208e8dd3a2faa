"""HostConnection against real lab sshd hosts: host-key policy, commands, SFTP, timeouts, failures."""

from __future__ import annotations

import asyncio
import time

import pytest

from clusterctl.provision.connection import ConnectionSpec, HostConnection, SFTPError
from clusterctl.provision.errors import CommandTimeout, HostUnreachable

pytestmark = pytest.mark.lab


def spec_for(lab, index: int = 0, **kw) -> ConnectionSpec:
    h = lab.hosts[index]
    kw.setdefault("known_hosts", str(lab.known_hosts_path))
    kw.setdefault("private_key", str(lab.key_path))
    return ConnectionSpec(name=h.name, host=h.ip, user="root", connect_timeout=30, **kw)  # a handshake on a loaded machine


@pytest.fixture
async def conn(lab3):
    c = await HostConnection.open(spec_for(lab3, 2))
    yield c
    await c.close()


async def test_commands_rc_streams_stdin_env_cwd(conn):
    res = await conn.run("echo out; echo err >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr, res.ok) == (3, "out\n", "err\n", False)
    assert (await conn.run("cat", stdin="text in")).stdout == "text in"
    assert (await conn.run("cat | wc -c", stdin=b"\x00\x01\x02")).stdout.strip() == "3"
    assert (await conn.run("cat; echo done")).stdout == "done\n"  # no input: stdin is closed, not left open
    assert (await conn.run('echo "$A|$B"', env={"A": "x y", "B": "$(id)"})).stdout == "x y|$(id)\n"
    assert (await conn.run("pwd", cwd="/etc")).stdout == "/etc\n"
    assert (await conn.run("kill -9 $$")).rc == 137
    assert (await conn.run("id -un", become=True)).stdout == "root\n"  # root -> root: no sudo needed


async def test_sftp_put_get_atomic_and_errors(conn):
    data = bytes(range(256)) * 1000
    await conn.put(data, "/tmp/cc-conn-blob", mode=0o600)
    assert await conn.get("/tmp/cc-conn-blob") == data
    assert (await conn.run("stat -c %a /tmp/cc-conn-blob; ls /tmp | grep -c clusterctl-tmp || true")).stdout.split() == ["600", "0"]
    with pytest.raises(SFTPError, match="no-such-dir"):
        await conn.put(b"x", "/no-such-dir/file")
    with pytest.raises(SFTPError, match="/nope"):
        await conn.get("/nope")


async def test_command_timeout(conn):
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="timed out"):
        await conn.run("sleep 60", timeout=0.3)
    # loose on purpose (a loaded machine): without the timeout the command would take its 60 s
    assert time.monotonic() - t0 < 20
    assert (await conn.run("echo still-usable")).stdout == "still-usable\n"


async def test_many_commands_share_one_connection_concurrently(conn):
    results = await asyncio.gather(*(conn.run(f"echo {i}") for i in range(30)))
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(30)]


async def test_unknown_or_missing_known_hosts_is_unreachable(lab3, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostUnreachable, match="host key"):
        await HostConnection.open(spec_for(lab3, known_hosts=str(empty)))
    with pytest.raises(HostUnreachable, match="no known_hosts"):
        await HostConnection.open(spec_for(lab3, known_hosts=str(tmp_path / "absent")))


async def test_accept_new_records_the_key_but_never_trusts_a_changed_one(lab3, tmp_path):
    kh = tmp_path / "kh"
    kh.write_text("")
    c = await HostConnection.open(spec_for(lab3, known_hosts=str(kh), accept_new_host_keys=True))
    await c.close()
    recorded = kh.read_text()
    assert recorded.startswith(lab3.hosts[0].ip + " ")
    c = await HostConnection.open(spec_for(lab3, known_hosts=str(kh)))  # now trusted strictly
    assert (await c.run("hostname")).stdout.strip() == lab3.hosts[0].name
    await c.close()
    # host 0's address with host 1's key: a changed key must be refused even with accept-new
    other_key = next(line.split(None, 1)[1] for line in lab3.known_hosts_path.read_text().splitlines()
                     if line.split()[0] == lab3.hosts[1].ip)
    kh.write_text(f"{lab3.hosts[0].ip} {other_key}\n")
    with pytest.raises(HostUnreachable, match="host key"):
        await HostConnection.open(spec_for(lab3, known_hosts=str(kh), accept_new_host_keys=True))
    assert kh.read_text() == f"{lab3.hosts[0].ip} {other_key}\n"


async def test_wrong_user_key_and_closed_port(lab3, tmp_path):
    with pytest.raises(HostUnreachable, match="cannot connect"):
        await HostConnection.open(spec_for(lab3, port=2))
    with pytest.raises(HostUnreachable, match="permission denied"):
        await HostConnection.open(spec_for(lab3, private_key=None, password="wrong"))


async def test_connection_lost_mid_command_is_unreachable(lab_factory):
    lab = lab_factory(1)
    c = await HostConnection.open(spec_for(lab))
    try:
        task = asyncio.create_task(c.run("sleep 30"))
        await asyncio.sleep(0.3)
        await asyncio.get_running_loop().run_in_executor(None, lab.stop, lab.hosts[0].name)
        with pytest.raises(HostUnreachable):
            await asyncio.wait_for(task, 20)
    finally:
        await c.close()


async def test_put_never_exposes_data_with_open_permissions(conn):
    await conn.put(b"secret", "/tmp/cc-conn-default")
    await conn.put(b"secret", "/tmp/cc-conn-private", mode=0o600)
    assert (await conn.run("stat -c %a /tmp/cc-conn-default /tmp/cc-conn-private")).stdout.split() == ["644", "600"]
