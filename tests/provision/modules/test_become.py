"""become_user on a real lab host: files written and read as another user go through the
command channel (SFTP always runs as the login user), and commands run as that user.

The lab has no sudo package, so a private host gets a minimal ``sudo`` that does what
``sudo -n -H -u USER -- CMD`` does (switch uid/gid/groups and HOME with setpriv) — enough to
run the modules' become paths for real.
"""

from __future__ import annotations

import pytest

from clusterctl.provision.modules import ModuleContext
from tests.provision.modules.conftest import open_conn, run_module

pytestmark = pytest.mark.lab

MINI_SUDO = r"""#!/bin/sh
# sudo -n -H -u USER -- CMD...
u=root
while [ $# -gt 0 ]; do case $1 in -n|-H) shift;; -u) u=$2; shift 2;; --) shift; break;; *) break;; esac; done
HOME=$(getent passwd "$u" | cut -d: -f6); export HOME
exec setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --init-groups -- "$@"
"""


async def test_become_user_writes_reads_and_runs_as_that_user(lab_factory):
    lab = lab_factory(1)
    conn = await open_conn(lab)
    try:
        await conn.put(MINI_SUDO.encode(), "/usr/local/bin/sudo", mode=0o755)
        assert (await conn.run("useradd -m -s /bin/sh app && mkdir -p /srv/app && chown app: /srv/app && chmod 700 /srv/app")).rc == 0
        ctx = ModuleContext(conn=conn, host="h1", become=True, become_user="app")
        assert not ctx.writes_as_login_user
        who = await run_module(ctx, "command", {"_raw_params": "id -un"})
        assert who["stdout"] == "app"
        args = {"content": "owned by app\n", "dest": "/srv/app/conf", "mode": "0600"}
        first = await run_module(ctx, "copy", args)
        assert first["changed"] and not first["failed"], first
        assert (await conn.run("stat -c %U:%a /srv/app/conf; cat /srv/app/conf")).stdout == "app:600\nowned by app\n"
        assert (await run_module(ctx, "copy", args))["changed"] is False
        line = await run_module(ModuleContext(conn=conn, host="h1", become=True, become_user="app", diff=True),
                                "lineinfile", {"path": "/srv/app/conf", "line": "second"})
        assert line["changed"] and line["diff"][0]["before"] == "owned by app\n"
        slurped = await run_module(ctx, "slurp", {"src": "/srv/app/conf"})
        assert not slurped["failed"] and slurped["content"]
        denied = await run_module(ctx, "copy", {"content": "x", "dest": "/etc/app-denied"})
        assert denied["failed"]
        assert (await conn.run("ls -A /srv/app /etc | grep -c clusterctl || true")).stdout.strip() == "0"
    finally:
        await conn.close()
