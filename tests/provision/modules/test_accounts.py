"""user and group on a real lab host: created, changed field by field, removed; twice-run unchanged."""

from __future__ import annotations

import uuid

import pytest

from clusterctl.provision.modules.user import parse_user_query, plan_user
from tests.provision.modules.conftest import run_module

pytestmark = pytest.mark.lab


@pytest.fixture
async def names(conn):
    tag = uuid.uuid4().hex[:6]
    user, grp, extra = f"ccu{tag}", f"ccg{tag}", f"ccx{tag}"
    yield user, grp, extra
    await conn.run(f"userdel -r {user} 2>/dev/null; groupdel {grp} 2>/dev/null; groupdel {extra} 2>/dev/null; true")


async def twice(make_ctx, module: str, args: dict) -> dict:
    checked = await run_module(make_ctx(check_mode=True), module, args)
    first = await run_module(make_ctx(), module, args)
    second = await run_module(make_ctx(), module, args)
    assert checked["changed"] and first["changed"], (checked, first)
    assert not first["failed"] and second["changed"] is False, (first, second)
    return first


async def test_group_and_user_lifecycle(make_ctx, on_host, names):
    user, grp, extra = names
    g = await twice(make_ctx, "group", {"name": grp, "gid": 4711})
    assert g["gid"] == 4711 and (await on_host(f"getent group {grp}")).startswith(f"{grp}:x:4711:")
    await twice(make_ctx, "group", {"name": grp, "gid": 4712})
    await twice(make_ctx, "group", {"name": extra, "system": True})

    args = {"name": user, "uid": 4800, "group": grp, "groups": [extra], "shell": "/bin/sh", "home": f"/home/{user}", "comment": "Test User"}
    u = await twice(make_ctx, "user", args)
    assert u["uid"] == 4800 and u["shell"] == "/bin/sh" and u["home"] == f"/home/{user}"
    entry = (await on_host(f"getent passwd {user}")).strip()
    assert entry == f"{user}:x:4800:4712:Test User:/home/{user}:/bin/sh"
    assert (await on_host(f"id -Gn {user}")).split() == [grp, extra]
    assert (await on_host(f"[ -d /home/{user} ] && echo y")).strip() == "y"

    await twice(make_ctx, "user", {"name": user, "shell": "/bin/bash"})
    await twice(make_ctx, "user", {"name": user, "groups": [], "append": False})
    assert (await on_host(f"id -Gn {user}")).split() == [grp]
    await twice(make_ctx, "user", {"name": user, "groups": extra, "append": True})
    assert (await on_host(f"id -Gn {user}")).split() == [grp, extra]

    await twice(make_ctx, "user", {"name": user, "state": "absent", "remove": True})
    assert (await on_host(f"getent passwd {user} || echo gone")).strip() == "gone"
    await twice(make_ctx, "group", {"name": extra, "state": "absent"})


async def test_user_failure_is_a_result(make_ctx, names):
    user, _, _ = names
    res = await run_module(make_ctx(), "user", {"name": user, "group": "no-such-group-xyz"})
    assert res["failed"] and "useradd" in res["msg"]


def test_plan_user_is_minimal():
    cur = parse_user_query("P bob:x:1001:1001:Bob:/home/bob:/bin/sh\nG bob\nS bob adm\nH !\n")
    assert cur == {"name": "bob", "uid": 1001, "gid": 1001, "comment": "Bob", "home": "/home/bob", "shell": "/bin/sh",
                   "group": "bob", "groups": ["bob", "adm"], "password": "!"}
    assert plan_user(cur, {"name": "bob", "shell": "/bin/sh", "groups": ["adm"]}) == []
    assert plan_user(cur, {"name": "bob", "groups": "adm,sudo", "append": True}) == ["usermod -a -G sudo -- bob"]
    assert plan_user(cur, {"name": "bob", "groups": ["sudo"]}) == ["usermod -G sudo -- bob"]
    assert plan_user(None, {"name": "x", "system": True}) == ["useradd -r -M -- x"]
    assert plan_user(None, {"name": "x"}) == ["useradd -m -U -- x"]
    assert parse_user_query("") is None
