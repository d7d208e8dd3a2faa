"""package/apt on a private lab host: a locally built .deb installed, queried, removed (no network).

The lab hosts have no route to any package mirror (and must not), so installs come from a .deb
built here with dpkg-deb; everything else (dpkg-query decisions, apt-get remove, check mode)
is the real thing.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from clusterctl.provision.modules import ModuleContext
from clusterctl.provision.modules.package import package_names, parse_dpkg_query
from tests.provision.modules.conftest import open_conn, run_module

pytestmark = pytest.mark.lab


def build_deb(tmp_path, name: str, version: str) -> bytes:
    root = tmp_path / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share" / name).mkdir(parents=True)
    (root / "usr/share" / name / "hello").write_text("hi\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test\n")
    out = tmp_path / f"{name}_{version}.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)], check=True, capture_output=True)
    return out.read_bytes()


async def test_apt_deb_install_query_remove(lab_factory, tmp_path):
    lab = lab_factory(1)
    conn = await open_conn(lab)
    try:
        name = f"cc-dummy-{uuid.uuid4().hex[:6]}"
        await conn.put(build_deb(tmp_path, name, "1.0"), "/root/dummy.deb")

        def ctx(**kw):
            return ModuleContext(conn=conn, host="h1", **kw)

        deb = {"deb": "/root/dummy.deb"}
        assert (await run_module(ctx(check_mode=True), "apt", deb))["changed"]
        assert "not-installed" in (await conn.run(f"dpkg-query -W -f='${{Status}}' {name} 2>&1; true")).stdout or \
            (await conn.run(f"dpkg-query -W {name}")).rc != 0
        first = await run_module(ctx(), "apt", deb)
        assert first["changed"] and not first["failed"], first
        assert (await conn.run(f"cat /usr/share/{name}/hello")).stdout == "hi\n"
        assert (await run_module(ctx(), "apt", deb))["changed"] is False

        present = {"name": [name, "openssh-server"], "state": "present"}
        assert (await run_module(ctx(), "package", present))["changed"] is False
        assert (await run_module(ctx(), "package", {"name": name, "state": "latest"}))["changed"] is False
        missing = await run_module(ctx(check_mode=True), "apt", {"name": "cc-not-installed-pkg", "state": "present"})
        assert missing["changed"] and missing["packages"] == ["cc-not-installed-pkg"]

        absent = {"name": name, "state": "absent"}
        assert (await run_module(ctx(check_mode=True), "package", absent))["changed"]
        assert (await conn.run(f"dpkg-query -W {name}")).rc == 0
        removed = await run_module(ctx(), "package", absent)
        assert removed["changed"] and not removed["failed"], removed
        assert (await conn.run(f"[ -e /usr/share/{name}/hello ] && echo y || echo n")).stdout.strip() == "n"
        assert (await run_module(ctx(), "package", absent))["changed"] is False
    finally:
        await conn.close()


def test_package_parsers():
    assert package_names("a, b,c") == ["a", "b", "c"] and package_names(["x", " y "]) == ["x", "y"]
    text = "vim\tinstall ok installed\t2:9.0\nfoo\tdeinstall ok config-files\t1\nbar:amd64\tinstall ok installed\t3\n"
    assert parse_dpkg_query(text) == {"vim": "2:9.0", "bar": "3"}


FAKE_RPM = r"""#!/bin/sh
# stand-in rpm: "installed" packages are files in /var/lib/fake-rpm (the lab has no rpm database)
shift; qf=$2; shift 2
rc=0
for p in "$@"; do
  if [ -e /var/lib/fake-rpm/$p ]; then printf '%s\tinstall ok installed\t%s\n' "$p" "$(cat /var/lib/fake-rpm/$p)"; else echo "package $p is not installed"; rc=1; fi
done
exit $rc
"""
FAKE_DNF = r"""#!/bin/sh
# stand-in dnf: install/remove edit /var/lib/fake-rpm, check-update reports what /var/lib/fake-repo has newer
echo "$*" >> /var/lib/fake-rpm.calls
while [ "${1#-}" != "$1" ]; do shift; done
cmd=$1; shift
case $cmd in
  install) for p in "$@"; do cat /var/lib/fake-repo/$p > /var/lib/fake-rpm/$p || exit 1; done ;;
  remove) for p in "$@"; do rm -f /var/lib/fake-rpm/$p; done ;;
  check-update) rc=0; for p in "$@"; do
      [ "$(cat /var/lib/fake-repo/$p)" != "$(cat /var/lib/fake-rpm/$p)" ] && { echo "$p.x86_64  $(cat /var/lib/fake-repo/$p)  repo"; rc=100; }
    done; exit $rc ;;
  makecache) : ;;
esac
"""


async def test_dnf_branch_with_stand_in_rpm_and_dnf(lab_factory):
    """dnf/yum decisions (rpm -q, install only what is missing, latest via check-update) on a private
    host given a recording dnf and an rpm over a file database (the machine has no rpm)."""
    lab = lab_factory(1)
    conn = await open_conn(lab)
    try:
        await conn.put(FAKE_RPM.encode(), "/usr/local/bin/rpm", mode=0o755)
        await conn.put(FAKE_DNF.encode(), "/usr/local/bin/dnf", mode=0o755)
        assert (await conn.run("mkdir -p /var/lib/fake-rpm /var/lib/fake-repo && echo 1.0 > /var/lib/fake-repo/nginx"
                               " && echo 2.0 > /var/lib/fake-repo/curl && echo 1.0 > /var/lib/fake-rpm/curl")).rc == 0
        ctx = ModuleContext(conn=conn, host="h1")
        present = {"name": ["nginx", "curl"], "state": "present"}
        checked = await run_module(ModuleContext(conn=conn, host="h1", check_mode=True), "dnf", present)
        assert checked["changed"] and checked["packages"] == ["nginx"]
        first = await run_module(ctx, "dnf", present)
        assert first["changed"] and first["packages"] == ["nginx"]
        assert (await conn.run("cat /var/lib/fake-rpm.calls")).stdout == "-y -q install nginx\n"
        assert (await run_module(ctx, "yum", present))["changed"] is False
        latest = await run_module(ctx, "dnf", {"name": "curl,nginx", "state": "latest"})
        assert latest["changed"] and latest["packages"] == ["curl"]
        assert (await conn.run("cat /var/lib/fake-rpm/curl")).stdout == "2.0\n"
        assert (await run_module(ctx, "dnf", {"name": "curl,nginx", "state": "latest"}))["changed"] is False
        assert (await run_module(ctx, "dnf", {"name": "nginx", "state": "absent"}))["changed"]
        assert (await run_module(ctx, "dnf", {"name": "nginx", "state": "absent"}))["changed"] is False
    finally:
        await conn.close()
