"""Fixtures for the module tests: a real SSH connection to a lab host and a ModuleContext maker.

``conn`` connects to h1 of the session's ``lab3`` over real SSH with strict host-key checking.
``scratch`` is a fresh folder on that host for one test (lab hosts are shared by the session).
``make_ctx(**kw)`` builds a ``ModuleContext`` whose ``render_template`` renders with Jinja2 and
``template_vars``, and whose ``find_file`` looks in ``local/files`` and ``local/templates``.
``on_host(cmd)`` runs a shell command on the host to check what a module did, independently.
``run_twice`` is the table-driven harness: check mode changes nothing, the real run changes
what it should, the second real run must report ``changed: False``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import jinja2
import pytest

from clusterctl.provision.connection import ConnectionSpec, HostConnection
from clusterctl.provision.errors import PlaybookError
from clusterctl.provision.modules import ModuleContext, get_module


async def open_conn(lab, index: int = 0) -> HostConnection:
    h = lab.hosts[index]
    return await HostConnection.open(ConnectionSpec(
        name=h.name, host=h.ip, user="root", private_key=str(lab.key_path), known_hosts=str(lab.known_hosts_path)))


@pytest.fixture
async def conn(lab3):
    c = await open_conn(lab3)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def local(tmp_path: Path) -> Path:
    root = tmp_path / "local"
    for kind in ("files", "templates", "scripts"):
        (root / kind).mkdir(parents=True)
    return root


@pytest.fixture
def template_vars() -> dict:
    return {"inventory_hostname": "h1", "greeting": "hello"}


@pytest.fixture
def make_ctx(conn, local, template_vars, tmp_path):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

    def render(path: Path) -> str:
        return env.from_string(path.read_text()).render(**template_vars)

    def find(kind: str, rel: str) -> Path:
        p = Path(rel)
        if p.is_absolute():
            if p.exists():
                return p
        else:
            for cand in (local / kind / rel, local / rel):
                if cand.exists():
                    return cand
        raise PlaybookError(f"could not find {rel!r} in {local / kind}")

    def make(**kw) -> ModuleContext:
        kw.setdefault("render_template", render)
        kw.setdefault("find_file", find)
        kw.setdefault("fetch_root", tmp_path / "fetched")
        return ModuleContext(conn=conn, host="h1", **kw)

    return make


@pytest.fixture
def on_host(conn):
    async def run(cmd: str) -> str:
        res = await conn.run(cmd)
        assert res.rc == 0, f"host check failed: {cmd}\n{res.stderr}"
        return res.stdout

    return run


@pytest.fixture
async def scratch(conn):
    path = f"/tmp/cc-mod-{uuid.uuid4().hex[:8]}"
    res = await conn.run(f"mkdir -p {path}")
    assert res.rc == 0
    yield path
    await conn.run(f"rm -rf {path}")


async def snapshot(conn: HostConnection, root: str) -> str:
    """Everything observable under ``root``: names, types, modes, owners, sizes, mtimes, content hashes."""
    res = await conn.run(
        f"[ -e {root} ] || {{ echo ABSENT; exit 0; }}; "
        f"find {root} -exec stat -c '%n|%F|%a|%U|%G|%s|%Y|%N' {{}} + | sort; "
        f"find {root} -type f -exec sha1sum {{}} + | sort")
    assert res.rc == 0, res.stderr
    return res.stdout


DIFF_MODULES = {"copy", "template", "file", "lineinfile", "blockinfile", "unarchive"}


async def run_module(ctx: ModuleContext, name: str, args: dict) -> dict:
    spec = get_module(name)
    spec.check_args(args)
    return await spec.run(ctx, dict(args))


@pytest.fixture
def run_twice(make_ctx, conn):
    """check mode (host untouched) -> real run (changed as expected) -> real run again (unchanged)."""

    async def go(name: str, args: dict, *, watch: str, changed: bool = True) -> tuple[dict, dict, dict]:
        before = await snapshot(conn, watch)
        checked = await run_module(make_ctx(check_mode=True, diff=True), name, args)
        assert not checked.get("failed"), checked
        assert checked["changed"] is changed, checked
        assert await snapshot(conn, watch) == before, "check mode changed the host"
        if changed and name in DIFF_MODULES:
            assert checked.get("diff"), f"{name} in diff mode returned no diff: {checked}"
        first = await run_module(make_ctx(diff=True), name, args)
        assert not first.get("failed"), first
        assert first["changed"] is changed, first
        second = await run_module(make_ctx(), name, args)
        assert not second.get("failed"), second
        assert second["changed"] is False, f"second run of {name} {args} changed again: {second}"
        return checked, first, second

    return go
