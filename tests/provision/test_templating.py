"""Templating as Ansible does it: native values, filters/tests, strict undefined, template files.

``data/templating/oracle.yml`` is a playbook of ``debug: msg=TEMPLATE`` tasks; what ansible-core
2.19 printed for each is recorded in ``oracle_expected.json`` (fast tier) and re-checked live by
running ansible-playbook once (oracle tier). Template files are checked the same way against the
``template`` module's output (``expected_app.conf``, ``expected_header.out``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clusterctl.provision.errors import TemplateError
from clusterctl.provision.templating import Templar, truthy

DATA = Path(__file__).parent / "data" / "templating"
ORACLE = yaml.safe_load((DATA / "oracle.yml").read_text())[0]
ORACLE_TEMPLATES = [task["debug"]["msg"] for task in ORACLE["tasks"]]


def _oracle_templar() -> Templar:
    return Templar(dict(ORACLE["vars"], inventory_hostname="localhost"))


def _jsonish(value: object) -> object:
    return json.loads(json.dumps(value))


@pytest.fixture
def oracle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPL_TEST_ENV", "envval")


@pytest.mark.parametrize("index", range(len(ORACLE_TEMPLATES)), ids=[t[:40] for t in ORACLE_TEMPLATES])
def test_render_matches_recorded_ansible(index: int, oracle_env: None) -> None:
    expected = json.loads((DATA / "oracle_expected.json").read_text())[index]
    assert _jsonish(_oracle_templar().render(ORACLE_TEMPLATES[index])) == expected


def _debug_messages(stdout: str) -> list:
    out, buf = [], None
    for line in stdout.splitlines():
        if line.startswith("ok: [localhost] => {"):
            buf = ["{"]
            continue
        if buf is not None:
            buf.append(line)
            if line == "}":
                out.append(json.loads("\n".join(buf))["msg"])
                buf = None
    return out


def _ansible_env() -> dict:
    return dict(os.environ, TPL_TEST_ENV="envval", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
                ANSIBLE_DEPRECATION_WARNINGS="false")


def test_render_matches_live_ansible_playbook(oracle_env: None) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(DATA / "oracle.yml"),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, timeout=120, env=_ansible_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    live = _debug_messages(proc.stdout)
    assert len(live) == len(ORACLE_TEMPLATES)
    templar = _oracle_templar()
    assert [_jsonish(templar.render(t)) for t in ORACLE_TEMPLATES] == live


TEMPLATE_VARS = {"peers": ["a", "b"], "debug": True, "limits": {}, "mode": "0644", "inventory_hostname": "localhost"}


def test_render_file_matches_recorded_template_module() -> None:
    templar = Templar(TEMPLATE_VARS, searchpath=[str(DATA)])
    assert templar.render_file(DATA / "templates" / "app.conf.j2") == (DATA / "expected_app.conf").read_text()
    # relative to the search path; `#jinja2:` header overrides trim_blocks/lstrip_blocks
    assert templar.render_file("templates/header.j2") == (DATA / "expected_header.out").read_text()


def test_render_file_matches_live_template_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         str(DATA / "template_oracle.yml"), "-e", f"out_dir={tmp_path}", "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, timeout=120, env=_ansible_env(), cwd=DATA,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    templar = Templar(TEMPLATE_VARS, searchpath=[str(DATA)])
    assert templar.render_file(DATA / "templates" / "app.conf.j2") == (tmp_path / "app.conf").read_text()
    assert templar.render_file(DATA / "templates" / "header.j2") == (tmp_path / "header.out").read_text()


def test_bench_template_renders(tmp_path: Path) -> None:
    bench = Path("/work/shared/bench/provision/templates/app.conf.j2")
    src = tmp_path / "app.conf.j2"
    src.write_text(bench.read_text() if bench.exists() else "# managed\nhost={{ inventory_hostname }}\naddr={{ ansible_host }}\npeers={{ groups['nodes'] | join(',') }}\n")
    out = Templar({"inventory_hostname": "h1", "ansible_host": "10.0.0.1", "groups": {"nodes": ["h1", "h2"]}}).render_file(src)
    assert out == "# managed\nhost=h1\naddr=10.0.0.1\npeers=h1,h2\n"


# ------------------------------------------------------------------ natives
@pytest.mark.parametrize(
    "template,value",
    [
        ("{{ n }}", 3), ("{{ l }}", [1, "a"]), ("{{ d }}", {"k": [1]}), ("{{ flag }}", False), ("{{ none }}", None),
        ("{{ n }}x", "3x"), ("x{{ none }}", "x"), ("{{ l | length }}", 2), ("{{ '%s-%s' % (n, n) }}", "3-3"),
        ("plain", "plain"), ("{{ n }}{{ n }}", "33"), ("{{ ref }}", [1, "a"]), ("{{ nested.inner }}", "3!"),
        ("{# comment #}", ""), ("{% raw %}{{ n }}{% endraw %}", "{{ n }}"), ("{{ s }}", "42"),
    ],
)
def test_single_expression_is_native(template: str, value: object) -> None:
    t = Templar({"n": 3, "l": [1, "a"], "d": {"k": [1]}, "flag": False, "none": None, "ref": "{{ l }}",
                 "nested": {"inner": "{{ n }}!"}, "s": "42"})
    assert t.render(template) == value


def test_render_walks_containers_and_keys() -> None:
    t = Templar({"k": "key", "v": 1})
    assert t.render({"{{ k }}": ["{{ v }}", ("{{ v + 1 }}",)], "plain": 5}) == {"key": [1, (2,)], "plain": 5}


@pytest.mark.parametrize(
    "template,needle",
    [
        ("{{ missing }}", "'missing' is undefined"),
        ("a {{ missing }} b", "'missing' is undefined"),
        ("{{ d.nokey }}", "has no attribute 'nokey'"),
        ("{{ missing.deep.er }}", "'missing' is undefined"),
        ("{{ missing | mandatory }}", "Mandatory variable 'missing' not defined"),
        ("{{ missing | mandatory('set it!') }}", "set it!"),
        ("{% for x in missing %}{% endfor %}", "'missing' is undefined"),
        ("{{ bad }}", "'other' is undefined"),
        ("{{ n | nosuchfilter }}", "No filter named 'nosuchfilter'"),
        ("{{ n ", "syntax error"),
        ("{{ loop_a }}", "recursive loop"),
    ],
)
def test_errors_name_the_variable(template: str, needle: str) -> None:
    t = Templar({"d": {"k": 1}, "n": 1, "bad": "{{ other }}", "loop_a": "{{ loop_b }}", "loop_b": "{{ loop_a }}"})
    with pytest.raises(TemplateError) as info:
        t.render(template)
    assert needle in str(info.value)


def test_lenient_only_where_ansible_is() -> None:
    t = Templar({"d": {"k": 1}})
    assert t.render("{{ missing | default('x') }}") == "x"
    assert t.render("{{ missing.a.b | d('y') }}") == "y"
    assert t.render("{{ missing is defined }}-{{ missing.a is undefined }}-{{ d.zz is defined }}") == "False-True-False"
    assert t.render("{{ d.k | default(5) }}") == 1
    assert t.render("{{ '' | default('e', true) }}") == "e"


# -------------------------------------------------------------- conditions
@pytest.mark.parametrize(
    "expr,value",
    [
        ("n > 2", True), ("n is defined and n == 3", True), ("missing is not defined", True), (True, True), (False, False),
        (["n > 2", "s == '42'"], True), (["n > 2", "n > 5"], False), ("result is changed", True), ("result is failed", False),
        ("result.rc == 0", True), ("'{{ n }}' == '3'", True), ("{{ n > 2 }}", True), ("flag_str", "false"),
        ("l | select('gt', 1) | list", [2, 3]), ("s is version('41', '>')", True),
    ],
)
def test_evaluate(expr: object, value: object) -> None:
    t = Templar({"n": 3, "s": "42", "result": {"changed": True, "rc": 0}, "flag_str": "false", "l": [1, 2, 3]})
    assert t.evaluate(expr) == value


def test_evaluate_condition_uses_ansible_truth() -> None:
    t = Templar({"flag_str": "false", "yes_str": "yes", "n": 0})
    assert t.evaluate_condition("flag_str") is False
    assert t.evaluate_condition("yes_str") is True
    assert t.evaluate_condition("n") is False
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        t.evaluate_condition("missing")
    assert [truthy(v) for v in ("on", "off", "1", "0", "anything", "")] == [True, False, True, False, True, False]


def test_backslashes_in_playbook_strings_are_not_double_unescaped() -> None:
    t = Templar({"s": "a_name"})
    assert t.render("{{ s | regex_replace('^(.*)_name$', '\\1') }}") == "a"
    assert t.render("{{ 'x\\ty' }}") == "x\\ty"  # as Ansible: the YAML layer did the unescaping
    assert t.evaluate("'a\\nb' | length") == 3  # conditions: Jinja's own escapes


# --------------------------------------------------------------- lookups
def test_lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "key.pub").write_text("ssh-ed25519 AAAA test\n")
    monkeypatch.setenv("CLUSTERCTL_TPL", "v")
    t = Templar({"name": "key.pub", "other": 5}, searchpath=[str(tmp_path)])
    assert t.render("{{ lookup('file', name) }}") == "ssh-ed25519 AAAA test"
    assert t.render("{{ lookup('env', 'CLUSTERCTL_TPL') }}-{{ lookup('env', 'NOPE_NOT_SET_X') }}") == "v-"
    assert t.render("{{ query('env', 'CLUSTERCTL_TPL', 'NOPE_NOT_SET_X') }}") == ["v", ""]
    assert t.render("{{ lookup('vars', 'other') }}") == 5
    assert t.render("{{ lookup('pipe', 'echo hi') }}") == "hi"
    assert t.render("{{ lookup('first_found', ['nope', 'key.pub']) }}") == str(tmp_path / "files" / "key.pub")
    with pytest.raises(TemplateError, match="could not locate file"):
        t.render("{{ lookup('file', 'absent.txt') }}")
    with pytest.raises(TemplateError, match="not supported"):
        t.render("{{ lookup('redis', 'k') }}")


# ---------------------------------------------------------- more filters
@pytest.mark.parametrize(
    "template,value",
    [
        ("{{ {'a': 1} | combine({'b': 2}, {'a': 3}) }}", {"a": 3, "b": 2}),
        ("{{ [{'a': 1}, {'b': 2}] | combine }}", {"a": 1, "b": 2}),
        ("{{ {'l': [1, 2]} | combine({'l': [2, 3]}, list_merge='append_rp') }}", {"l": [1, 2, 3]}),
        ("{{ {'a': {'x': 1}} | combine({'a': {'y': 2}}) }}", {"a": {"y": 2}}),
        ("{{ 'a b' | quote }}", "'a b'"), ("{{ \"x'; rm -rf /\" | quote }}", "'x'\"'\"'; rm -rf /'"),
        ("{{ none | ternary('t', 'f', 'n') }}", "n"), ("{{ [1, 2] | symmetric_difference([2, 3]) }}", [1, 3]),
        ("{{ 'abc' | hash('sha1') }}", "a9993e364706816aba3e25717850c26c9cd0d89d"), ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ '2.1.0' is version('2.1', '==') }}", False), ("{{ '1.2.3' is version('1.2.3-rc1', '>', version_type='semver') }}", True),
        ("{{ '1.10' is version('1.9', 'gt', strict=True) }}", True), ("{{ 'ab' | regex_search('z') }}", None),
        ("{{ {'x': 1} | to_nice_yaml }}", "x: 1\n"), ("{{ 'a,b' | split(',') }}", ["a", "b"]),
        ("{{ [[1, 2], [3]] | map('length') | list }}", [2, 1]), ("{{ '/a/b.txt' | splitext }}", ["/a/b", ".txt"]),
        ("{{ 'x' | type_debug }}", "str"), ("{{ '4 KiB' | human_to_bytes }}", 4096),
        ("{{ [{'n': 'a', 'g': [1, 2]}] | subelements('g') | length }}", 2),
        ("{{ ['a', 'b'] | zip_longest([1]) }}", [["a", 1], ["b", None]]),
    ],
)
def test_more_filters(template: str, value: object) -> None:
    assert _jsonish(Templar({"none": None}).render(template)) == _jsonish(value)


def test_is_template() -> None:
    t = Templar({})
    assert t.is_template("{{ x }}") and t.is_template("{% if %}") and t.is_template("a {# c #}")
    assert not t.is_template("plain") and not t.is_template(3)


@pytest.mark.parametrize(
    "text,message",
    [
        ("a\nb={{ b }}\nc={{ nope }}\n", ":3: undefined variable: 'nope' is undefined"),
        ("{% for x in b %}\n{% endfor %}\n", ":1: TypeError"),
        ("ok\n{% include 'missing.j2' %}\n", ":2: 'missing.j2' not found"),
        ("x={{ 1 +\n", ":1: syntax error"),
    ],
)
def test_template_file_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    src = tmp_path / "t.j2"
    src.write_text(text)
    with pytest.raises(TemplateError) as info:
        Templar({"b": 1}).render_file(src)
    assert f"template {src}{message}" in str(info.value)
