"""Inventories read as ansible-core reads them.

Two tiers: the fast one compares with ``ansible-inventory`` output recorded from ansible-core
2.19 (``data/inventories/expected/``); the oracle tier runs the real ``ansible-inventory`` and
``ansible --list-hosts`` from the venv on the same fixtures (each call ~0.7 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clusterctl.provision.errors import InventoryError
from clusterctl.provision.inventory import (
    Inventory,
    connection_spec,
    expand_hostname_range,
    load_inventory,
    parse_ini_value,
    split_host_pattern,
)

DATA = Path(__file__).parent / "data" / "inventories"
CASES = {
    "ini_full": [DATA / "ini_full" / "hosts.ini"],
    "yaml_full": [DATA / "yaml_full" / "hosts.yml"],
    "vars_dirs": [DATA / "vars_dirs" / "hosts"],
    "dir_source": [DATA / "dir_source"],
    "multi": [DATA / "multi" / "a.ini", DATA / "multi" / "b.yaml"],
}


def _ansible_bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    assert found, f"{name} (ansible-core, the oracle) is not installed next to {sys.executable} nor on PATH"
    return found


def _json(data: object) -> object:
    return json.loads(json.dumps(data))


# ------------------------------------------------------------ recorded oracle
@pytest.mark.parametrize("case", sorted(CASES))
def test_list_matches_recorded_ansible_inventory(case: str) -> None:
    inv = load_inventory([str(p) for p in CASES[case]])
    expected = json.loads((DATA / "expected" / f"{case}.list.json").read_text())
    assert _json(inv.to_list_json()) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_and_graph_match_recorded_ansible_inventory(case: str) -> None:
    inv = load_inventory([str(p) for p in CASES[case]])
    assert _json(inv.to_list_json(export=True)) == json.loads((DATA / "expected" / f"{case}.export.json").read_text())
    assert inv.graph() == (DATA / "expected" / f"{case}.graph.txt").read_text().rstrip("\n")


# --------------------------------------------------------------- live oracle
@pytest.mark.parametrize("case", ["ini_full", "vars_dirs", "multi"])
def test_list_matches_live_ansible_inventory(case: str) -> None:
    args = [_ansible_bin("ansible-inventory")]
    for p in CASES[case]:
        args += ["-i", str(p)]
    out = subprocess.run(args + ["--list"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert _json(load_inventory([str(p) for p in CASES[case]]).to_list_json()) == json.loads(out)


PATTERNS = [
    ("all", "bastion.example.com jump late1 web01.example.com web02.example.com web03.example.com web-a web-b web-c web-legacy db1 db5 db9 10.0.0.1 10.0.0.2 cache1"),
    ("app:!db", "web01.example.com web02.example.com web03.example.com web-a web-b web-c web-legacy cache1"),
    ("app:&web", "web01.example.com web02.example.com web03.example.com web-a web-b web-c web-legacy"),
    ("web*", "web01.example.com web02.example.com web03.example.com web-a web-b web-c web-legacy"),
    ("~db[14]", "db1"),
    ("prod[1:3]", "web01.example.com web02.example.com web03.example.com"),
    ("web[0]", "web01.example.com"),
    ("web[-1]", "web-legacy"),
    ("db,cache,bastion*", "db1 db5 db9 10.0.0.1 10.0.0.2 cache1 bastion.example.com"),
    ("later:jump", "late1 jump"),
    ("!web", "bastion.example.com jump late1 db1 db5 db9 10.0.0.1 10.0.0.2 cache1"),
    ("10.0.0.*", "10.0.0.1 10.0.0.2"),
    ("app:!web-*:&app", "web01.example.com web02.example.com web03.example.com db1 db5 db9 10.0.0.1 10.0.0.2 cache1"),
    ("ungrouped", "bastion.example.com jump"),
    ("localhost", "localhost"),
    ("nomatch", ""),
]


@pytest.mark.parametrize("pattern,expected", PATTERNS)
def test_select_follows_ansible_host_patterns(pattern: str, expected: str) -> None:
    # expected lists were produced by `ansible -i ini_full/hosts.ini PATTERN --list-hosts`
    inv = load_inventory(str(CASES["ini_full"][0]))
    assert inv.select(pattern) == expected.split()


@pytest.mark.parametrize("pattern", ["app:!db", "~db[14]", "prod[1:3]", "!web"])
def test_select_matches_live_ansible_list_hosts(pattern: str) -> None:
    out = subprocess.run(
        [_ansible_bin("ansible"), "-i", str(CASES["ini_full"][0]), pattern, "--list-hosts"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    live = [line.strip() for line in out.splitlines()[1:] if line.strip()]
    assert load_inventory(str(CASES["ini_full"][0])).select(pattern) == live


# ---------------------------------------------------------------- semantics
def test_ini_values_are_typed_as_ansible_types_them() -> None:
    inv = load_inventory(str(CASES["ini_full"][0]))
    web_a = inv.host_vars("web-a")
    assert web_a["opts"] == {"tls": True, "ports": [80, 443]}
    assert web_a["tags"] == ["x", "y"]
    legacy = inv.hosts["web-legacy"].vars
    assert legacy == {"ratio": 0.5, "enabled": True, "off": False, "nothing": None, "word": "FALSE", "quoted": "two words"}
    app = inv.groups["app"].vars
    # ansible-core literal_evals [g:vars] too (its docs say strings: ansible/ansible#86229)
    assert app["http_port"] == 8080 and app["literal"] == {"a": [1, 2]}
    assert app["name"] == "hello world" and app["flag"] == "FALSE" and app["quoted"] == "x y"


@pytest.mark.parametrize(
    "raw,value",
    [("3", 3), ("-2", -2), ("1.5", 1.5), ("True", True), ("None", None), ("yes", "yes"), ("'q'", "q"),
     ("[1, 'a']", [1, "a"]), ("(1, 2)", [1, 2]), ("{'a': {'b': 1}}", {"a": {"b": 1}}), ("a=b", "a=b"),
     ("0755", "0755"), ("1e3", 1000.0), ("...", "..."), ("1j", "1j"), ("b'x'", "x")],
)
def test_parse_ini_value(raw: str, value: object) -> None:
    assert parse_ini_value(raw) == value


@pytest.mark.parametrize(
    "pattern,hosts",
    [("node[01:03]", ["node01", "node02", "node03"]), ("n[1:10:4]", ["n1", "n5", "n9"]), ("[a:c]x", ["ax", "bx", "cx"]),
     ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"]), ("plain", ["plain"]), ("h[:2]", ["h0", "h1", "h2"])],
)
def test_expand_hostname_range(pattern: str, hosts: list[str]) -> None:
    assert expand_hostname_range(pattern) == hosts


@pytest.mark.parametrize(
    "pattern,parts",
    [("a:b", ["a", "b"]), ("a,b:c", ["a", "b:c"]), ("a:&b:!c", ["a", "&b", "!c"]), ("web[1:3]", ["web[1:3]"]),
     ("fe80::1", ["fe80::1"]), (" a , b ", ["a", "b"]), ("g[0]:h", ["g[0]", "h"])],
)
def test_split_host_pattern(pattern: str, parts: list[str]) -> None:
    assert split_host_pattern(pattern) == parts


def test_host_groups_are_direct_and_ancestors_without_all() -> None:
    inv = load_inventory(str(CASES["ini_full"][0]))
    assert set(inv.hosts["web01.example.com"].groups) == {"web", "app", "prod"}
    assert inv.hosts["jump"].groups == ["ungrouped"]
    assert inv.hosts["jump"].vars["ansible_port"] == 2022
    assert inv.groups["app"].parents == ["prod"]
    assert inv.groups["app"].children == ["web", "db", "cache"]


def test_variable_layers_follow_ansible() -> None:
    inv = load_inventory(str(CASES["vars_dirs"][0]))
    web1 = inv.host_vars("web1")
    assert web1["shared"] == "web1-file"  # host_vars file > host inline > groups
    assert web1["level"] == "app-file"  # a parent's group_vars file beats a child's inline vars
    assert web1["fromfile"] == "web-file"  # a group's file beats its inline vars
    assert web1["nginx"] == {"workers": 8}  # NAME/ folder: files merged in name order, replace
    assert web1["only_noext"] is True and "ntp_servers" not in web1  # `all` found, `all.yml` not read
    assert "not" not in web1  # notes.txt is not a vars file
    assert inv.host_vars("db1")["db_engine"] == "mysql"  # host_vars/db1.json over group_vars/db


def test_group_priority_reorders_merge(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("[a]\nh\n[b]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n[b:vars]\nx=b\n")
    assert load_inventory(str(tmp_path / "hosts")).host_vars("h")["x"] == "a"


def test_implicit_localhost_is_selectable_but_not_listed(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("[g]\nh1\n[all:vars]\nv=1\n")
    inv = load_inventory(str(tmp_path / "hosts"))
    assert inv.select("localhost") == ["localhost"]
    assert "localhost" not in inv.hosts and "localhost" not in inv.to_list_json()["_meta"]["hostvars"]
    hv = inv.host_vars("localhost")
    assert hv["ansible_connection"] == "local" and hv["v"] == 1


def test_host_list_source() -> None:
    inv = load_inventory("h1,h2:2200,")
    assert list(inv.hosts) == ["h1", "h2"] and inv.hosts["h2"].vars["ansible_port"] == 2200


# ------------------------------------------------------------------- errors
def test_missing_inventory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=f"{tmp_path}/nope.ini does not exist"):
        load_inventory(str(tmp_path / "nope.ini"))


@pytest.mark.parametrize(
    "text,line,message",
    [
        ("[g]\nh1\nh2 novalue\n", 3, "expected key=value"),
        ("[g:children]\nmissing\n", 2, "includes undefined group 'missing'"),
        ("[g:vars]\nx=1\n", 1, "not valid for undefined group 'g'"),
        ("[g]\nh1\n[g:weird]\n", 3, "unknown type"),
        ("[g]\nh1\n[bad group]\n", 3, "invalid section entry"),
        ("[g:vars]\nnovalue\n[g]\n", 2, "expected key=value"),
        ("[g]\nh 'unclosed\n", 2, "cannot parse host line"),
        ("[g]\nn[01:2]\n", 2, "equal-length"),
        ("[a:children]\nb\n[b:children]\na\n", 4, "recursive dependency loop"),
    ],
)
def test_malformed_ini_names_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(str(path))
    assert f"{path}:{line}:" in str(info.value) and message in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("all:\n  hosts:\n    a: {x: 1\n  vars: [\n")
    with pytest.raises(InventoryError, match=rf"{path}:\d+: YAML syntax error"):
        load_inventory(str(path))


def test_bad_group_vars_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("[g]\nh\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "g.yml").write_text("- a list\n")
    with pytest.raises(InventoryError, match="group_vars/g.yml: variables file must be a mapping"):
        load_inventory(str(tmp_path / "hosts"))


# --------------------------------------------------------------- connection
def test_connection_spec_from_lab_style_inventory(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    (tmp_path / "inventory.ini").write_text(
        "[nodes]\n"
        "h1 ansible_host=10.200.0.11 ansible_user=root ansible_ssh_private_key_file=~/key\n"
        "h2 ansible_host=10.200.0.12 ansible_port=2222 ansible_become=yes ansible_become_user=app\n"
        "[nodes:vars]\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes'\n"
    )
    inv = load_inventory(str(tmp_path / "inventory.ini"))
    s1 = connection_spec(inv, "h1")
    assert (s1.name, s1.host, s1.port, s1.user) == ("h1", "10.200.0.11", 22, "root")
    assert s1.private_key == os.path.expanduser("~/key")
    assert s1.known_hosts == str(kh) and s1.accept_new_host_keys is False
    s2 = connection_spec(inv.host_vars("h2"), "h2", accept_new=True)
    assert s2.port == 2222 and s2.accept_new_host_keys is True
    assert s2.extra["become"] is True and s2.extra["become_user"] == "app" and s2.extra["connection"] == "ssh"
    explicit = connection_spec(inv, "h1", known_hosts="/x/kh")
    assert explicit.known_hosts == "/x/kh"


def test_connection_spec_renders_templated_connection_vars(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars:\n    net: 10.9.0\n  hosts:\n    a:\n      ansible_host: '{{ net }}.5'\n      ansible_connection: local\n"
    )
    spec = connection_spec(load_inventory(str(tmp_path / "hosts.yml")), "a")
    assert spec.host == "10.9.0.5" and spec.extra["connection"] == "local"


def test_accept_new_from_ssh_args_and_port_error() -> None:
    spec = connection_spec({"ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new"}, "x")
    assert spec.accept_new_host_keys is True and spec.host == "x"
    with pytest.raises(InventoryError, match="ansible_port must be a number"):
        connection_spec({"ansible_port": "abc"}, "x")


def test_inventory_built_by_hand() -> None:
    inv = Inventory()
    inv.add_group("g")
    inv.add_host("h", "g")
    inv.set_group_var("g", "x", 1)
    inv.reconcile()
    assert inv.select("g") == ["h"] and inv.host_vars("h")["x"] == 1


# ---------------------------------------------------------------------- CLI
def test_cli_list_prints_what_ansible_inventory_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from clusterctl.provision.inventory_cli import main

    for case in ("ini_full", "yaml_full", "multi"):
        args = []
        for p in CASES[case]:
            args += ["-i", str(p)]
        assert main(args + ["--list"]) == 0
        assert capsys.readouterr().out == (DATA / "expected" / f"{case}.list.json").read_text()


def test_cli_host_graph_select(capsys: pytest.CaptureFixture[str]) -> None:
    from clusterctl.provision.inventory_cli import main

    src = str(CASES["vars_dirs"][0])
    main(["-i", src, "--host", "web1"])
    assert json.loads(capsys.readouterr().out)["shared"] == "web1-file"
    main(["-i", src, "--graph"])
    assert capsys.readouterr().out == (DATA / "expected" / "vars_dirs.graph.txt").read_text()
    main(["-i", src, "--select", "app:!db"])
    assert capsys.readouterr().out.split() == ["web1", "web2"]
    main(["-i", src, "--list", "--limit", "db"])
    listed = json.loads(capsys.readouterr().out)
    assert list(listed["_meta"]["hostvars"]) == ["db1"] and "web" not in listed


def test_cli_through_the_dispatcher_reports_missing_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clusterctl", "inventory", "-i", str(tmp_path / "missing.ini"), "--list"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert f"inventory source {tmp_path}/missing.ini does not exist" in proc.stderr


# ------------------------------------------------------- example inventories
EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"


@pytest.mark.parametrize("name", ["lab.ini", "vagrant.yml", "production"])
def test_example_inventories_load(name: str) -> None:
    inv = load_inventory(str(EXAMPLES / name))
    assert inv.select("control_plane") and inv.select("workers")
    assert set(inv.select("cluster")) == set(inv.select("control_plane:workers"))
    for host in inv.select("all"):
        spec = connection_spec(inv, host)
        assert spec.host and spec.port > 0


def test_production_example_variables() -> None:
    from clusterctl.provision.templating import Templar
    from clusterctl.provision.variables import VariableManager

    inv = load_inventory(str(EXAMPLES / "production"))
    vm = VariableManager(inv)
    cp = Templar(vm.get_vars("cp2.prod.example.com"))
    assert cp.render("{{ api_endpoint }}") == "https://cp1.prod.example.com:6443"
    assert cp.render("{{ etcd_peers }}") == ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    big = vm.get_vars("node-b04.prod.example.com")
    assert (big["max_pods"], big["zone"], big["container_runtime"]) == (250, "b", "process")
    assert vm.get_vars("node-a01.prod.example.com")["max_pods"] == 110
    spec = connection_spec(inv, "cp1.prod.example.com")
    assert spec.known_hosts == os.path.expanduser("~/.ssh/known_hosts_prod") and spec.user == "ops"


def test_lab_example_known_hosts_comes_from_the_inventory() -> None:
    spec = connection_spec(load_inventory(str(EXAMPLES / "lab.ini")), "h2")
    assert (spec.host, spec.user, spec.known_hosts) == ("10.200.0.12", "root", "/tmp/lab/known_hosts")
    assert spec.accept_new_host_keys is False


def test_production_example_matches_live_ansible_inventory() -> None:
    out = subprocess.run(
        [_ansible_bin("ansible-inventory"), "-i", str(EXAMPLES / "production"), "--list"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    assert _json(load_inventory(str(EXAMPLES / "production")).to_list_json()) == json.loads(out)


@pytest.mark.parametrize("case", ["ini_full"])
def test_cli_yaml_list_matches_live_ansible_inventory(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from clusterctl.provision.inventory_cli import main

    src = str(CASES[case][0])
    for extra in ([], ["--export"]):
        live = subprocess.run(
            [_ansible_bin("ansible-inventory"), "-i", src, "--list", "--yaml", *extra],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
        main(["-i", src, "--list", "--yaml", *extra])
        # same data; we write repeated values out instead of YAML anchors
        assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(live)


def test_range_hosts_do_not_share_mutable_values() -> None:
    inv = load_inventory(str(CASES["ini_full"][0]))
    inv.hosts["web-a"].vars["opts"]["ports"].append(8080)
    assert inv.hosts["web-b"].vars["opts"]["ports"] == [80, 443]


def test_graph_with_vars_matches_recorded_ansible_inventory() -> None:
    inv = load_inventory(str(CASES["vars_dirs"][0]))
    expected = (DATA / "expected" / "vars_dirs.graph-vars.txt").read_text().rstrip("\n")
    assert inv.graph(show_vars=True) == expected


def test_connection_paths_with_spaces(tmp_path: Path) -> None:
    # the quoting the lab writes for a lab dir with a space in its path
    d = tmp_path / "my lab"
    (tmp_path / "inventory.ini").write_text(
        "[nodes]\n"
        f"h1 ansible_host=10.200.0.11 ansible_user=root ansible_ssh_private_key_file='{d}/id_ed25519'\n"
        "[nodes:vars]\n"
        f"ansible_ssh_common_args='-o \\'UserKnownHostsFile=\"{d}/known_hosts\"\\' -o StrictHostKeyChecking=yes'\n"
    )
    spec = connection_spec(load_inventory(str(tmp_path / "inventory.ini")), "h1")
    assert spec.private_key == f"{d}/id_ed25519" and spec.known_hosts == f"{d}/known_hosts"
    assert spec.accept_new_host_keys is False
