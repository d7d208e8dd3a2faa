"""copy, template, file, lineinfile, blockinfile, stat, slurp, fetch, unarchive on a real lab host.

Each table case runs through ``run_twice``: check mode must leave the host byte-for-byte as it
was, the real run must change it, and the second real run must report ``changed: False``. Then
the host is inspected independently (``on_host``) for what the module claims it did.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile

import pytest

from tests.provision.modules.conftest import run_module

pytestmark = pytest.mark.lab


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# (name, module, args with {d} = scratch dir, setup shell, check shell that must print "ok")
CASES = [
    ("copy-content-new", "copy", {"content": "hello\n", "dest": "{d}/a.txt", "mode": "0640"}, "",
     "[ \"$(cat {d}/a.txt)\" = hello ] && [ $(stat -c %a {d}/a.txt) = 640 ] && echo ok"),
    ("copy-content-replace", "copy", {"content": "new\n", "dest": "{d}/a.txt"}, "echo old > {d}/a.txt; chmod 600 {d}/a.txt",
     "[ \"$(cat {d}/a.txt)\" = new ] && [ $(stat -c %a {d}/a.txt) = 600 ] && echo ok"),
    ("copy-mode-only", "copy", {"content": "same\n", "dest": "{d}/a.txt", "mode": "u=rw,g=r,o="}, "echo same > {d}/a.txt; chmod 666 {d}/a.txt",
     "[ $(stat -c %a {d}/a.txt) = 640 ] && echo ok"),
    ("copy-owner-group", "copy", {"content": "x", "dest": "{d}/o.txt", "owner": "nobody", "group": "nogroup"}, "",
     "[ $(stat -c %U:%G {d}/o.txt) = nobody:nogroup ] && echo ok"),
    ("copy-into-dir", "copy", {"src": "payload.bin", "dest": "{d}/sub/"}, "",
     "[ -f {d}/sub/payload.bin ] && echo ok"),
    ("copy-existing-dir-dest", "copy", {"src": "payload.bin", "dest": "{d}"}, "",
     "[ -f {d}/payload.bin ] && echo ok"),
    ("copy-tree-contents", "copy", {"src": "tree/", "dest": "{d}/t"}, "mkdir {d}/t",
     "[ \"$(cat {d}/t/top.txt)\" = top ] && [ \"$(cat {d}/t/deep/er.txt)\" = deeper ] && [ ! -e {d}/t/tree ] && echo ok"),
    ("copy-tree-itself", "copy", {"src": "tree", "dest": "{d}/t2/"}, "",
     "[ \"$(cat {d}/t2/tree/top.txt)\" = top ] && echo ok"),
    ("copy-remote-src", "copy", {"src": "{d}/orig", "dest": "{d}/dup", "remote_src": True, "mode": "0600"}, "echo orig > {d}/orig",
     "[ \"$(cat {d}/dup)\" = orig ] && [ $(stat -c %a {d}/dup) = 600 ] && echo ok"),
    ("template", "template", {"src": "motd.j2", "dest": "{d}/motd", "mode": "0644"}, "",
     "[ \"$(cat {d}/motd)\" = 'hello from h1' ] && echo ok"),
    ("file-directory", "file", {"path": "{d}/x/y/z", "state": "directory", "mode": "0750"}, "",
     "[ -d {d}/x/y/z ] && [ $(stat -c %a {d}/x/y/z) = 750 ] && echo ok"),
    ("file-directory-symbolic", "file", {"path": "{d}/sd", "state": "directory", "mode": "u=rwx,g=rx,o-rwx"}, "mkdir -m 777 {d}/sd",
     "[ $(stat -c %a {d}/sd) = 750 ] && echo ok"),
    ("file-recurse", "file", {"path": "{d}/r", "state": "directory", "mode": "u+rwX,go-rwx", "recurse": True},
     "mkdir -p {d}/r/s && touch {d}/r/f {d}/r/s/g && chmod 755 {d}/r/s && chmod 644 {d}/r/f {d}/r/s/g",
     "[ $(stat -c %a {d}/r/s) = 700 ] && [ $(stat -c %a {d}/r/f) = 600 ] && [ $(stat -c %a {d}/r/s/g) = 600 ] && echo ok"),
    ("file-file-attrs", "file", {"path": "{d}/f", "mode": "0600", "owner": "nobody"}, "touch {d}/f",
     "[ $(stat -c %a:%U {d}/f) = 600:nobody ] && echo ok"),
    ("file-touch-preserve", "file", {"path": "{d}/touched", "state": "touch", "modification_time": "preserve", "access_time": "preserve"}, "",
     "[ -f {d}/touched ] && echo ok"),
    ("file-link", "file", {"path": "{d}/lnk", "src": "{d}/target", "state": "link"}, "touch {d}/target",
     "[ \"$(readlink {d}/lnk)\" = {d}/target ] && echo ok"),
    ("file-link-retarget", "file", {"path": "{d}/lnk", "src": "target2", "state": "link"}, "touch {d}/target2; ln -s target {d}/lnk",
     "[ \"$(readlink {d}/lnk)\" = target2 ] && echo ok"),
    ("file-hard", "file", {"path": "{d}/hard", "src": "{d}/target", "state": "hard"}, "echo t > {d}/target",
     "[ $(stat -c %i {d}/hard) = $(stat -c %i {d}/target) ] && echo ok"),
    ("file-absent-tree", "file", {"path": "{d}/gone", "state": "absent"}, "mkdir -p {d}/gone/a && touch {d}/gone/a/b",
     "[ ! -e {d}/gone ] && echo ok"),
    ("lineinfile-replace", "lineinfile", {"path": "{d}/cfg", "regexp": "^port=", "line": "port=8080"}, "printf 'a=1\\nport=80\\nb=2\\n' > {d}/cfg",
     "[ \"$(cat {d}/cfg)\" = \"$(printf 'a=1\\nport=8080\\nb=2')\" ] && echo ok"),
    ("lineinfile-insertafter", "lineinfile", {"path": "{d}/cfg", "line": "new=1", "insertafter": "^a="}, "printf 'a=1\\nb=2\\n' > {d}/cfg",
     "[ \"$(sed -n 2p {d}/cfg)\" = new=1 ] && echo ok"),
    ("lineinfile-bof", "lineinfile", {"path": "{d}/cfg", "line": "# head", "insertbefore": "BOF"}, "printf 'a=1\\n' > {d}/cfg",
     "[ \"$(head -1 {d}/cfg)\" = '# head' ] && echo ok"),
    ("lineinfile-absent", "lineinfile", {"path": "{d}/cfg", "regexp": "^#", "state": "absent"}, "printf '#x\\na\\n#y\\n' > {d}/cfg",
     "[ \"$(cat {d}/cfg)\" = a ] && echo ok"),
    ("lineinfile-create", "lineinfile", {"path": "{d}/new/cfg", "line": "only", "create": True, "mode": "0600"}, "",
     "[ \"$(cat {d}/new/cfg)\" = only ] && [ $(stat -c %a {d}/new/cfg) = 600 ] && echo ok"),
    ("lineinfile-backrefs", "lineinfile", {"path": "{d}/cfg", "regexp": "^(user)=.*$", "line": "\\1=admin", "backrefs": True},
     "printf 'user=bob\\n' > {d}/cfg", "[ \"$(cat {d}/cfg)\" = user=admin ] && echo ok"),
    ("lineinfile-through-symlink", "lineinfile", {"path": "{d}/link", "line": "added"}, "echo first > {d}/real; ln -s real {d}/link",
     "[ -L {d}/link ] && [ \"$(cat {d}/real)\" = \"$(printf 'first\\nadded')\" ] && echo ok"),
    ("blockinfile-insert", "blockinfile", {"path": "{d}/cfg", "block": "x=1\ny=2", "insertafter": "^a"}, "printf 'a\\nb\\n' > {d}/cfg",
     "[ \"$(cat {d}/cfg)\" = \"$(printf 'a\\n# BEGIN ANSIBLE MANAGED BLOCK\\nx=1\\ny=2\\n# END ANSIBLE MANAGED BLOCK\\nb')\" ] && echo ok"),
    ("blockinfile-update", "blockinfile", {"path": "{d}/cfg", "block": "z=3", "marker": "## {mark} mine"},
     "printf 'a\\n## BEGIN mine\\nold\\n## END mine\\nb\\n' > {d}/cfg",
     "[ \"$(cat {d}/cfg)\" = \"$(printf 'a\\n## BEGIN mine\\nz=3\\n## END mine\\nb')\" ] && echo ok"),
    ("blockinfile-remove", "blockinfile", {"path": "{d}/cfg", "state": "absent"},
     "printf 'a\\n# BEGIN ANSIBLE MANAGED BLOCK\\nold\\n# END ANSIBLE MANAGED BLOCK\\n' > {d}/cfg",
     "[ \"$(cat {d}/cfg)\" = a ] && echo ok"),
    ("unarchive-tgz", "unarchive", {"src": "bundle.tgz", "dest": "{d}"}, "",
     "[ \"$(cat {d}/bundle/one.txt)\" = one ] && [ -L {d}/bundle/link ] && echo ok"),
    ("unarchive-zip-remote", "unarchive", {"src": "{d}/b.zip", "dest": "{d}/out", "remote_src": True}, "mkdir {d}/out",
     "[ \"$(cat {d}/out/z/inside.txt)\" = zipped ] && echo ok"),
]


@pytest.fixture
def local_files(local):
    (local / "files" / "payload.bin").write_bytes(bytes(range(256)) * 4)
    tree = local / "files" / "tree"
    (tree / "deep").mkdir(parents=True)
    (tree / "top.txt").write_text("top\n")
    (tree / "deep" / "er.txt").write_text("deeper\n")
    (local / "templates" / "motd.j2").write_text("{{ greeting }} from {{ inventory_hostname }}\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("bundle/one.txt", b"one\n"), ("bundle/two/three.txt", b"3\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bundle/link")
        link.type, link.linkname = tarfile.SYMTYPE, "one.txt"
        tar.addfile(link)
    (local / "files" / "bundle.tgz").write_bytes(buf.getvalue())
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("z/inside.txt", "zipped\n")
    return zbuf.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_file_module_is_idempotent_and_check_safe(case, run_twice, scratch, on_host, conn, local_files):
    _, module, args, setup, check = case
    args = {k: (v.replace("{d}", scratch) if isinstance(v, str) else v) for k, v in args.items()}
    if "zip" in case[0]:
        await conn.put(local_files, f"{scratch}/b.zip")
    if setup:
        await on_host(setup.format(d=scratch))
    checked, first, second = await run_twice(module, args, watch=scratch)
    assert (await on_host(check.format(d=scratch))).strip() == "ok"


async def test_copy_reports_diff_and_checksum(make_ctx, scratch, on_host):
    await on_host(f"printf 'one\\ntwo\\n' > {scratch}/d.txt")
    res = await run_module(make_ctx(check_mode=True, diff=True), "copy", {"content": "one\nTWO\n", "dest": f"{scratch}/d.txt", "mode": "g-r,o-r"})
    assert res["changed"] and res["checksum"] == sha1(b"one\nTWO\n") and res["mode"] == "0600"
    (d,) = res["diff"]
    assert d["before"] == "one\ntwo\n" and d["after"] == "one\nTWO\n"
    assert (await on_host(f"cat {scratch}/d.txt")) == "one\ntwo\n"


async def test_copy_backup_and_validate(make_ctx, scratch, on_host):
    dest = f"{scratch}/v.conf"
    await on_host(f"echo old > {dest}")
    bad = await run_module(make_ctx(), "copy", {"content": "bad\n", "dest": dest, "validate": "grep -q good %s"})
    assert bad["failed"] and "validate" in bad["msg"]
    assert (await on_host(f"cat {dest}")) == "old\n"
    good = await run_module(make_ctx(), "copy", {"content": "good\n", "dest": dest, "validate": "grep -q good %s", "backup": True})
    assert good["changed"] and (await on_host(f"cat {good['backup_file']}")) == "old\n"
    assert (await on_host(f"ls -A {scratch} | grep -c clusterctl || true")).strip() == "0"
    line = await run_module(make_ctx(), "lineinfile", {"path": dest, "line": "bad", "validate": "awk '/bad/ { exit 1 }' %s"})
    assert line["failed"], line
    assert (await on_host(f"cat {dest}")) == "good\n"


async def test_copy_force_no_keeps_existing(make_ctx, scratch, on_host):
    await on_host(f"echo mine > {scratch}/k")
    res = await run_module(make_ctx(), "copy", {"content": "theirs\n", "dest": f"{scratch}/k", "force": False})
    assert res["changed"] is False and (await on_host(f"cat {scratch}/k")) == "mine\n"


async def test_file_state_errors_are_failed_results(make_ctx, scratch):
    res = await run_module(make_ctx(), "file", {"path": f"{scratch}/nope", "state": "file"})
    assert res["failed"] and "absent" in res["msg"]
    res = await run_module(make_ctx(), "file", {"path": scratch, "state": "link", "src": "/etc"})
    assert res["failed"] and "refusing" in res["msg"]


async def test_file_touch_changes_every_time_unless_preserved(make_ctx, scratch):
    args = {"path": f"{scratch}/t", "state": "touch"}
    assert (await run_module(make_ctx(), "file", args))["changed"]
    assert (await run_module(make_ctx(), "file", args))["changed"]  # Ansible: touch updates times


async def test_file_diff_shows_state_change(make_ctx, scratch):
    res = await run_module(make_ctx(check_mode=True, diff=True), "file", {"path": f"{scratch}/nd", "state": "directory"})
    assert res["diff"]["before"]["state"] == "absent" and res["diff"]["after"]["state"] == "directory"


async def test_lineinfile_missing_file_fails_and_diff(make_ctx, scratch, on_host):
    res = await run_module(make_ctx(), "lineinfile", {"path": f"{scratch}/none", "line": "x"})
    assert res["failed"] and res["rc"] == 257
    await on_host(f"printf 'a\\n' > {scratch}/f")
    res = await run_module(make_ctx(check_mode=True, diff=True), "lineinfile", {"path": f"{scratch}/f", "line": "b"})
    assert res["diff"][0]["before"] == "a\n" and res["diff"][0]["after"] == "a\nb\n"


async def test_stat_reports_like_ansible(make_ctx, scratch, on_host):
    await on_host(f"printf 'abc' > {scratch}/s && chmod 0640 {scratch}/s && ln -s s {scratch}/l")
    st = (await run_module(make_ctx(), "stat", {"path": f"{scratch}/s"}))["stat"]
    assert st["exists"] and st["isreg"] and st["mode"] == "0640" and st["size"] == 3
    assert st["checksum"] == sha1(b"abc") and st["pw_name"] == "root" and st["rusr"] and not st["xoth"]
    st = (await run_module(make_ctx(), "stat", {"path": f"{scratch}/l"}))["stat"]
    assert st["islnk"] and st["lnk_target"] == "s" and st["lnk_source"] == f"{scratch}/s"
    st = (await run_module(make_ctx(), "stat", {"path": f"{scratch}/l", "follow": True, "checksum_algorithm": "sha256"}))["stat"]
    assert st["isreg"] and st["checksum"] == hashlib.sha256(b"abc").hexdigest()
    assert (await run_module(make_ctx(), "stat", {"path": f"{scratch}/none"}))["stat"] == {"exists": False}
    st = (await run_module(make_ctx(), "stat", {"path": scratch, "get_checksum": False}))["stat"]
    assert st["isdir"] and "checksum" not in st


async def test_slurp_and_fetch(make_ctx, scratch, conn, tmp_path):
    data = bytes(range(256))
    await conn.put(data, f"{scratch}/blob")
    res = await run_module(make_ctx(), "slurp", {"src": f"{scratch}/blob"})
    assert base64.b64decode(res["content"]) == data and res["encoding"] == "base64"
    assert (await run_module(make_ctx(), "slurp", {"src": f"{scratch}/none"}))["failed"]

    args = {"src": f"{scratch}/blob", "dest": "out"}
    assert (await run_module(make_ctx(check_mode=True), "fetch", args))["changed"]
    assert not (tmp_path / "fetched" / "out").exists()
    first = await run_module(make_ctx(), "fetch", args)
    target = tmp_path / "fetched" / "out" / "h1" / scratch.lstrip("/") / "blob"
    assert first["changed"] and first["dest"] == str(target) and target.read_bytes() == data
    assert (await run_module(make_ctx(), "fetch", args))["changed"] is False
    flat = await run_module(make_ctx(), "fetch", {"src": f"{scratch}/blob", "dest": str(tmp_path / "flat") + "/", "flat": True})
    assert (tmp_path / "flat" / "blob").read_bytes() == data and flat["changed"]
    missing = await run_module(make_ctx(), "fetch", {"src": f"{scratch}/none", "dest": "out", "fail_on_missing": False})
    assert not missing["failed"] and not missing["changed"]


async def test_unarchive_creates_and_owner(make_ctx, scratch, on_host, local_files):
    await on_host(f"mkdir -p {scratch}/u")
    res = await run_module(make_ctx(), "unarchive", {"src": "bundle.tgz", "dest": f"{scratch}/u", "owner": "nobody", "list_files": True})
    assert res["changed"] and "bundle/one.txt" in res["files"]
    assert (await on_host(f"stat -c %U {scratch}/u/bundle/two/three.txt")).strip() == "nobody"
    again = await run_module(make_ctx(), "unarchive", {"src": "bundle.tgz", "dest": f"{scratch}/u", "owner": "nobody"})
    assert again["changed"] is False
    await on_host(f"echo tampered > {scratch}/u/bundle/one.txt")
    fixed = await run_module(make_ctx(), "unarchive", {"src": "bundle.tgz", "dest": f"{scratch}/u", "owner": "nobody"})
    assert fixed["changed"] and (await on_host(f"cat {scratch}/u/bundle/one.txt")) == "one\n"
    skip = await run_module(make_ctx(), "unarchive", {"src": "bundle.tgz", "dest": f"{scratch}/u", "creates": f"{scratch}/u/bundle"})
    assert skip["changed"] is False and "exists" in skip["msg"]
    assert (await run_module(make_ctx(), "unarchive", {"src": "bundle.tgz", "dest": f"{scratch}/nodir"}))["failed"]


async def test_big_trees_stay_under_the_argument_size_limit(make_ctx, scratch, on_host, local):
    """220 members with ~660-character paths (~145 KB of names): probes and attribute fixes are
    split so no ``sh -c`` argument passes Linux's 128 KiB limit (few files: creating files is
    slow on a loaded disk, long names are free)."""
    deep = "/".join(c * 200 for c in "abc")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(220):
            data = f"{i}\n".encode()
            info = tarfile.TarInfo(f"many/{deep}/{'f' * 40}-{i:05d}.txt")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    (local / "files" / "many.tgz").write_bytes(buf.getvalue())
    args = {"src": "many.tgz", "dest": scratch, "group": "nogroup"}
    first = await run_module(make_ctx(), "unarchive", args)
    assert first["changed"] and not first["failed"], first
    assert (await run_module(make_ctx(), "unarchive", args))["changed"] is False
    rec = {"path": f"{scratch}/many", "mode": "u=rwX,g=rX,o=", "recurse": True}
    assert (await run_module(make_ctx(), "file", rec))["changed"]
    assert (await run_module(make_ctx(), "file", rec))["changed"] is False
    assert (await on_host(f"find {scratch}/many -type f ! -perm 640 | wc -l; find {scratch}/many ! -group nogroup | wc -l")).split() == ["0", "0"]
