"""The pure rules behind the modules, without a host: modes, line/block editing, probe parsing."""

from __future__ import annotations

import pytest

from clusterctl.provision.modules import MODULES, ModuleArgError, get_module
from clusterctl.provision.modules.lineinfile import edit_block, edit_line_absent, edit_line_present
from clusterctl.provision.modules.modes import resolve_mode, validate_mode
from clusterctl.provision.modules.remote_file import RemoteStat, parse_probe, plan_attrs
from clusterctl.provision.modules.service import parse_service_output


@pytest.mark.parametrize("spec,current,is_dir,want", [
    ("0644", 0o600, False, 0o644),
    ("644", None, False, 0o644),
    ("0o2755", 0, True, 0o2755),
    (0o640, 0o777, False, 0o640),  # YAML's 0640 arrives as an int
    ("u+x", 0o644, False, 0o744),
    ("u=rw,g=r,o=", 0o777, False, 0o640),
    ("a+X", 0o644, False, 0o644),   # X: no execute bit anywhere and not a dir -> nothing
    ("a+X", 0o744, False, 0o755),
    ("a+X", 0o600, True, 0o711),
    ("go-rwx", 0o755, True, 0o700),
    ("u+rwX,go-rwx", 0o644, False, 0o600),
    ("g=u", 0o750, False, 0o770),
    ("+x", 0o644, False, 0o755),    # no who: umask 022 applies
    ("u+s,o+t", 0o755, True, 0o5755),
    ("a=", 0o777, False, 0o000),
    ("u+w", None, False, 0o644),    # new file: starts from 0666 & ~umask
])
def test_resolve_mode(spec, current, is_dir, want):
    assert resolve_mode(spec, current, is_dir) == want


@pytest.mark.parametrize("bad", ["u+q", "z=r", "rwx", "u+r,,"])
def test_bad_symbolic_modes_fail_before_any_host(bad):
    with pytest.raises(ModuleArgError):
        validate_mode(bad)
    with pytest.raises(ModuleArgError):
        get_module("file").check_args({"path": "/x", "mode": bad})


def L(text: str) -> list[bytes]:
    return text.encode().splitlines(True)


def J(lines: list[bytes]) -> str:
    return b"".join(lines).decode()


@pytest.mark.parametrize("before,kw,after,msg", [
    ("a\nb\n", dict(line="c"), "a\nb\nc\n", "line added"),
    ("a\nb", dict(line="c"), "a\nb\nc\n", "line added"),
    ("a\nc\n", dict(line="c"), "a\nc\n", ""),
    ("x=1\ny=2\n", dict(line="x=3", regexp=r"^x="), "x=3\ny=2\n", "line replaced"),
    ("x=1\nx=2\n", dict(line="x=3", regexp=r"^x="), "x=1\nx=3\n", "line replaced"),          # last match
    ("x=1\nx=2\n", dict(line="x=3", regexp=r"^x=", firstmatch=True), "x=3\nx=2\n", "line replaced"),
    ("a\nb\n", dict(line="n", insertafter="^a"), "a\nn\nb\n", "line added"),
    ("a\nb\n", dict(line="n", insertbefore="^b"), "a\nn\nb\n", "line added"),
    ("a\nb\n", dict(line="n", insertbefore="BOF"), "n\na\nb\n", "line added"),
    ("a\nb\n", dict(line="n", insertafter="^zzz"), "a\nb\nn\n", "line added"),                  # no match: EOF
    ("k=v\n", dict(line=r"\1=new", regexp=r"^(k)=.*", backrefs=True), "k=new\n", "line replaced"),
    ("other\n", dict(line=r"\1=new", regexp=r"^(k)=.*", backrefs=True), "other\n", ""),      # backrefs: no match, no add
    ("a\nport 1\n", dict(line="port 2", search_string="port "), "a\nport 2\n", "line replaced"),
    ("", dict(line="first"), "first\n", "line added"),
])
def test_lineinfile_present_rules(before, kw, after, msg):
    lines, changed, got_msg = edit_line_present(L(before), **kw)
    assert J(lines) == after and got_msg == msg and changed == (after != before)


def test_lineinfile_absent_rules():
    assert edit_line_absent(L("a\n#b\nc\n#d\n"), regexp="^#") == (L("a\nc\n"), 2)
    assert edit_line_absent(L("a\nb\n"), line="b") == (L("a\n"), 1)
    assert edit_line_absent(L("key=1\n"), search_string="y=") == ([], 1)


MARK0, MARK1 = "# BEGIN ANSIBLE MANAGED BLOCK\n", "# END ANSIBLE MANAGED BLOCK\n"


@pytest.mark.parametrize("before,kw,after", [
    (None, dict(block="x"), f"{MARK0}x\n{MARK1}"),
    ("a\n", dict(block="x\ny"), f"a\n{MARK0}x\ny\n{MARK1}"),
    ("a", dict(block="x"), f"a\n{MARK0}x\n{MARK1}"),
    (f"a\n{MARK0}old\n{MARK1}b\n", dict(block="new"), f"a\n{MARK0}new\n{MARK1}b\n"),
    (f"a\n{MARK0}old\n{MARK1}b\n", dict(block="", present=True), "a\nb\n"),
    (f"a\n{MARK0}old\n{MARK1}b\n", dict(block="x", present=False), "a\nb\n"),
    ("a\nb\nc\n", dict(block="x", insertafter="^b"), f"a\nb\n{MARK0}x\n{MARK1}c\n"),
    ("a\nb\n", dict(block="x", insertbefore="BOF"), f"{MARK0}x\n{MARK1}a\nb\n"),
    ("a\nb\n", dict(block="x", insertbefore="^b"), f"a\n{MARK0}x\n{MARK1}b\n"),
    ("a\n", dict(block="x", marker="// {mark}", marker_begin="start", marker_end="stop"), "a\n// start\nx\n// stop\n"),
    ("a\nb\n", dict(block="x", insertafter="^a", append_newline=True, prepend_newline=True), f"a\n\n{MARK0}x\n{MARK1}\nb\n"),
])
def test_blockinfile_rules(before, kw, after):
    assert edit_block(None if before is None else before.encode(), **kw).decode() == after


def test_probe_parser_and_attr_plan():
    text = ("@@ 0 file\nP rw\nX 0\nK 0\n@@ 1 absent\n@@ 2 link\nP rwx\nL /etc\nR /etc\nX 2\n--stat--\n"
            "644|0|0|root|root|3|1700000000|1700000001|1700000002|42|1|77|81a4\n777|0|0|root|root|4|1|1|1|43|1|77|a1ff\n"
            "--sum--\na9993e364706816aba3e25717850c26c9cd0d89d  /f\n")
    a, b, c = parse_probe(text, ["/f", "/none", "/l"])
    assert a.state == "file" and a.mode == 0o644 and a.checksum.startswith("a999") and a.size == 3 and a.access == "rw"
    assert a.as_ansible_stat()["isreg"] and not b.exists and b.as_ansible_stat() == {"exists": False}
    assert c.state == "link" and c.link_target == "/etc" and c.as_ansible_stat()["islnk"]
    assert plan_attrs(a, "0644", "root", "0").commands == []
    plan = plan_attrs(a, "u+x", "nobody", None)
    assert plan.commands == ["chmod 744 -- /f", "chown nobody -- /f"] and plan.before == {"mode": "0644", "owner": "root"}
    assert plan_attrs(c, "0600", None, "staff").commands == ["chown -h :staff -- /l"]  # never chmod a symlink
    assert plan_attrs(RemoteStat(path="/x'y", state="file", mode=0o600, uid=0, gid=0, owner="root", group="root"), "0644").commands == ["chmod 644 -- '/x'\"'\"'y'"]


def test_service_output_parser():
    assert parse_service_output("manager=clusterctl\nstate=started\npid=12\nenabled=no\nchanged=1\nnoise line\n") == {
        "manager": "clusterctl", "state": "started", "pid": "12", "enabled": "no", "changed": "1"}


def test_registry_names_and_argument_checks():
    for name in ("ansible.builtin.copy", "ansible.legacy.shell", "systemd", "ansible.builtin.systemd_service", "dnf", "yum", "package", "apt"):
        assert name in MODULES
    assert get_module("systemd") is get_module("service")
    assert get_module("command").free_form and not get_module("copy").free_form
    for name, args in [("copy", {"content": "x"}), ("copy", {"dest": "/x"}), ("copy", {"dest": "/x", "src": "a", "content": "b"}),
                       ("file", {}), ("file", {"path": "/x", "state": "bogus"}), ("lineinfile", {"path": "/x"}),
                       ("lineinfile", {"path": "/x", "state": "absent"}), ("service", {"name": "x"}),
                       ("service", {"name": "x", "state": "running"}), ("template", {"src": "a"}), ("user", {}),
                       ("uri", {}), ("fetch", {"src": "/a"}), ("unarchive", {"src": "a"}), ("wait_for", {"port": 1, "path": "/x"}),
                       ("stat", {"path": "/x", "checksum_algorithm": "crc"}), ("package", {"state": "present"})]:
        with pytest.raises(ModuleArgError):
            get_module(name).check_args(args)
    get_module("file").check_args({"path": "/x", "state": "{{ wanted }}", "mode": "{{ m }}"})  # templated values pass


def test_copy_content_is_written_like_ansible():
    from clusterctl.provision.modules.copy import content_bytes

    assert content_bytes("a\n") == b"a\n" and content_bytes({"a": [1, 2]}) == b'{"a": [1, 2]}' and content_bytes(3) == b"3"
