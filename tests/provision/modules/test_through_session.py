"""The modules through the executor's persistent shell session (``HostSession``), as playbooks run them.

The session evaluates each command inside a subshell of one long-lived ``sh`` instead of a new
``sh -c`` per SSH channel; scripts that use ``exit``, ``trap ... EXIT``, ``set -e``, stdin and
background daemons must behave the same there.
"""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest

from clusterctl.provision.executor import HostSession
from clusterctl.provision.modules import ModuleContext
from tests.provision.modules.conftest import open_conn, run_module

pytestmark = pytest.mark.lab


async def test_modules_in_the_executor_session(lab3, scratch, local):
    session = HostSession(await open_conn(lab3))
    try:
        await session.start_shell()

        def ctx(**kw):
            return ModuleContext(conn=session, host="h1", **kw)

        async def twice(name, args):
            first = await run_module(ctx(), name, args)
            second = await run_module(ctx(), name, args)
            assert not first["failed"] and first["changed"] and second["changed"] is False, (name, first, second)

        await twice("copy", {"content": "x\n", "dest": f"{scratch}/c", "mode": "0600"})
        await twice("file", {"path": f"{scratch}/d/e", "state": "directory"})
        await twice("lineinfile", {"path": f"{scratch}/c", "line": "y"})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("t/f")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"t\n"))
        (local / "files" / "t.tgz").write_bytes(buf.getvalue())
        await twice("unarchive", {"src": str(local / "files" / "t.tgz"), "dest": scratch})
        res = await run_module(ctx(), "shell", {"_raw_params": "read a; echo got-$a; exit 4", "stdin": "in"})
        assert res["rc"] == 4 and res["stdout"] == "got-in"
        assert (await run_module(ctx(), "stat", {"path": f"{scratch}/c"}))["stat"]["mode"] == "0600"
        name = f"ccsess-{uuid.uuid4().hex[:6]}"
        await run_module(ctx(), "file", {"path": "/etc/clusterctl/services", "state": "directory"})
        await run_module(ctx(), "copy", {"content": "CC_COMMAND='sleep 300'\n", "dest": f"/etc/clusterctl/services/{name}.env"})
        try:
            await twice("service", {"name": name, "state": "started", "startup_grace": 0.1})
            echo = await run_module(ctx(), "command", {"_raw_params": "echo session-still-alive"})
            assert echo["stdout"] == "session-still-alive"  # the detached daemon did not hold the session
            await twice("service", {"name": name, "state": "stopped"})
        finally:
            await session.run(f"rm -f /etc/clusterctl/services/{name}.env")
        facts = (await run_module(ctx(), "setup", {}))["ansible_facts"]
        assert facts["hostname"] == "h1"
    finally:
        await session.close()
