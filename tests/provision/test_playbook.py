"""Parsing and validating playbooks before any host is touched (no lab needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clusterctl.provision.errors import PlaybookError
from clusterctl.provision.playbook import Block, parse_kv, parse_playbook, split_args, undefined_variables

SAMPLE = Path(__file__).parent / "data" / "playbooks" / "site.yml"


def write(tmp_path: Path, text: str, name: str = "play.yml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_sample_playbook_tree_has_roles_handlers_includes_and_blocks():
    pb = parse_playbook(SAMPLE)
    (play,) = pb.plays
    assert [r.name for r in play.roles] == ["web", "common", "app"]  # app depends on common
    names = [t.display_name for t in play.all_tasks()]
    assert "web : Web config from a template" in names
    assert "common : Banner from the role's files" in names
    assert "Write a summary of what this host is" in names  # import_tasks expanded statically
    assert "app : Version file" in names  # static include_tasks parsed up front
    handler_names = [h.name for h in play.handlers]
    assert handler_names == ["reload web", "common changed", "note summary"]
    blocks = [b for b in play.main_tasks if isinstance(b, Block)]
    assert blocks and blocks[0].rescue and blocks[0].always
    web = play.roles[0]
    assert web.params == {"web_port": 8081} and web.defaults["web_workers"] == 2


def test_kv_strings_and_free_form_args():
    assert parse_kv('path=/x state=directory mode="0755"', free_form=False) == {"path": "/x", "state": "directory", "mode": "0755"}
    assert parse_kv("echo {{ a ~ 'b c' }} chdir=/tmp creates=/x", free_form=True) == {
        "_raw_params": "echo {{ a ~ 'b c' }}", "chdir": "/tmp", "creates": "/x"}
    assert split_args("msg='a b' x={{ y | default('1 2') }}") == ["msg='a b'", "x={{ y | default('1 2') }}"]
    with pytest.raises(ValueError):
        parse_kv("just words", free_form=False)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("- hosts: all\n  tasks:\n    - name: x\n      debug: msg=hi\n     bad: [\n", "YAML syntax error"),
        ("- hosts: all\n  tasks:\n    - name: nope\n      no_such_module: {a: 1}\n", "unknown module 'no_such_module'"),
        ("- hosts: all\n  tasks:\n    - name: kw\n      debug: msg=hi\n      colour: red\n", "unknown keyword(s): colour"),
        ("- hosts: all\n  bogus: 1\n  tasks: []\n", "unknown play keyword(s): bogus"),
        ("- hosts: all\n  tasks:\n    - name: a\n      assert: {}\n", "missing required arguments: that"),
        ("- hosts: all\n  tasks:\n    - name: n\n      debug: msg=hi\n      notify: ghost\n", "notifies handler 'ghost'"),
        ("- hosts: all\n  roles: [missing_role]\n", "role 'missing_role' not found"),
        ("- hosts: all\n  tasks:\n    - import_tasks: nowhere.yml\n", "task file 'nowhere.yml' not found"),
        ("- hosts: all\n  tasks:\n    - name: m\n      meta: explode\n", "unknown meta action"),
        ("- tasks: []\n", "play has no 'hosts'"),
    ],
)
def test_bad_playbooks_name_file_and_line(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(PlaybookError) as err:
        parse_playbook(path)
    msg = str(err.value)
    assert expected in msg
    assert str(path) in msg and ":" in msg.split(str(path))[1][:3]  # file:line


def test_task_error_names_its_line(tmp_path):
    path = write(tmp_path, """
        - hosts: all
          tasks:
            - name: fine
              debug: msg=ok
            - name: broken one
              frobnicate: yes
    """)
    with pytest.raises(PlaybookError, match=rf"{path}:5: task 'broken one': unknown module 'frobnicate'"):
        parse_playbook(path)


def test_import_playbook_and_inherited_keywords(tmp_path):
    write(tmp_path, """
        - hosts: web
          tasks:
            - block:
                - name: inner
                  debug: msg=x
                  tags: [inner]
              when: flag
              become: true
              tags: [outer]
    """, "sub.yml")
    main = write(tmp_path, "- import_playbook: sub.yml\n")
    (play,) = parse_playbook(main).plays
    (task,) = list(play.all_tasks())
    assert task.when == ("flag",)
    assert task.tags == {"inner", "outer"}
    assert task.inh.become is True


def test_undefined_variables_are_found_statically(tmp_path):
    path = write(tmp_path, """
        - hosts: all
          vars: {known: 1}
          tasks:
            - name: uses a typo
              debug: msg="{{ knwon }}"
            - name: guarded is fine
              debug: msg="{{ maybe | default('x') }} {{ known }} {{ inventory_hostname }}"
            - name: registered later is fine
              command: echo hi
              register: out
            - debug: var=out.stdout
    """)
    pb = parse_playbook(path)
    found = undefined_variables(pb, set())
    assert [(f.name, f.task) for f in found] == [("knwon", "task 'uses a typo'")]
    assert found[0].where == f"{path}:4"
    assert undefined_variables(pb, {"knwon"}) == []


def test_undefined_check_has_no_false_positives_on_common_idioms(tmp_path):
    path = write(tmp_path, """
        - hosts: nodes
          gather_facts: true
          vars:
            users: {alice: 1, bob: 2}
            base: "/srv/{{ app | default('x') }}"
          tasks:
            - command: "true"
              register: result
            - debug: msg="{{ item.key }}={{ item.value }} {{ idx }}"
              loop: "{{ users | dict2items }}"
              loop_control: {index_var: idx}
              when: result is changed
            - debug: msg="{{ hostvars[inventory_hostname]['ansible_host'] }} {{ lookup('env', 'HOME') }} {{ ansible_default_ipv4.address }}"
            - set_fact: {computed: "{{ base }}/x", cacheable: true}
            - debug: msg="{{ x }} {{ ansible_facts['hostname'] }} {{ groups.nodes | length }} {{ play_hosts }}"
              vars: {x: "{{ computed }}"}
            - debug: msg="{% for u in users %}{{ u }}{% endfor %}"
    """)
    assert undefined_variables(parse_playbook(path), set()) == []
    dynamic = write(tmp_path, """
        - hosts: nodes
          gather_facts: false
          tasks:
            - include_tasks: "{{ inventory_hostname }}.yml"
            - debug: msg="{{ set_somewhere_at_run_time }}"
    """, "dyn.yml")
    assert undefined_variables(parse_playbook(dynamic), set()) == []


def test_include_role_brings_tasks_handlers_and_defaults(tmp_path):
    import shutil

    shutil.copytree(SAMPLE.parent / "roles", tmp_path / "roles")
    path = write(tmp_path, """
        - hosts: all
          tasks:
            - name: web via a task
              include_role: {name: web}
              vars: {web_port: 9000}
    """)
    (play,) = parse_playbook(path).plays
    names = [t.display_name for t in play.all_tasks()]
    assert "web : Web config from a template" in names
    assert [h.name for h in play.handlers] == ["reload web"]
    assert [r.name for r in play.roles] == ["web"] and play.roles[0].params == {"web_port": 9000}
