"""The executor against real lab hosts over real SSH: idempotence, check/diff, failures, keywords.

Every playbook here runs through ``clusterctl.provision.cli.main`` (in-process, so the suite stays
fast) against ``lab3`` (h1, h2, h3), writing under a folder named after the test so tests sharing
the lab never see each other's files. Tests that break a host get their own lab.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusterctl.provision.cli import build_parser, main, run

pytestmark = pytest.mark.lab

DATA = Path(__file__).parent / "data" / "playbooks"
SHARED_SITE = Path(__file__).resolve().parents[3] / "shared" / "bench" / "provision" / "site.yml"


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for line in self.out.split("PLAY RECAP")[-1].splitlines():
            m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
            if m:
                table[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        return table


def provision(capsys, inventory, playbook, *args: str) -> Run:
    rc = main(["-i", str(inventory), str(playbook), *args])
    cap = capsys.readouterr()
    return Run(rc, cap.out, cap.err)


def write_play(tmp_path: Path, text: str, name: str = "play.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def on_host(lab, name: str, command: str) -> str:
    proc = subprocess.run(lab.exec_argv(name, "sh", "-c", command), capture_output=True, text=True, timeout=30)
    return proc.stdout


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- the sample multi-role playbook


def test_sample_playbook_converges_and_second_run_changes_nothing(capsys, lab3):
    first = provision(capsys, lab3.inventory_path, DATA / "site.yml", "-e", "run_id=twice")
    assert first.rc == 0, first.out + first.err
    assert set(first.recap) == {"h1", "h2", "h3"}
    for host, stats in first.recap.items():
        assert stats["changed"] > 5 and stats["failed"] == 0 and stats["rescued"] == 1, (host, stats)
    assert "RUNNING HANDLER [web : reload web]" in first.out
    conf = on_host(lab3, "h2", "cat /srv/sample-twice/web/web.conf")
    assert "listen 8081" in conf and "server_name h2" in conf and "peer h3" in conf
    assert on_host(lab3, "h1", "cat /srv/sample-twice/app/VERSION") == "sample-app 0.0\n"
    assert on_host(lab3, "h3", "cat /srv/sample-twice/web/reloads") == "reloaded\n"

    second = provision(capsys, lab3.inventory_path, DATA / "site.yml", "-e", "run_id=twice")
    assert second.rc == 0
    assert {h: s["changed"] for h, s in second.recap.items()} == {"h1": 0, "h2": 0, "h3": 0}
    assert "RUNNING HANDLER" not in second.out  # nothing changed, nothing notified
    assert on_host(lab3, "h3", "cat /srv/sample-twice/web/reloads") == "reloaded\n"

    # --check with a changed variable: reports the change, touches nothing
    check = provision(capsys, lab3.inventory_path, DATA / "site.yml", "-e", "run_id=twice", "-e", "web_workers=9", "--check")
    assert check.rc == 0, check.out
    assert all(s["changed"] >= 1 for s in check.recap.values())
    assert "workers 2" in on_host(lab3, "h1", "cat /srv/sample-twice/web/web.conf")
    assert on_host(lab3, "h1", "cat /srv/sample-twice/web/reloads") == "reloaded\n"

    # --diff shows the file's unified diff
    diff = provision(capsys, lab3.inventory_path, DATA / "site.yml", "-e", "run_id=twice", "-e", "web_workers=7", "--diff", "--limit", "h1")
    assert diff.rc == 0
    assert "-workers 2" in diff.out and "+workers 7" in diff.out
    assert "/srv/sample-twice/web/web.conf" in diff.out
    assert "workers 7" in on_host(lab3, "h1", "cat /srv/sample-twice/web/web.conf")


def test_shared_bench_playbook_runs_unchanged(capsys, lab3):
    assert SHARED_SITE.is_file(), SHARED_SITE
    first = provision(capsys, lab3.inventory_path, SHARED_SITE)
    assert first.rc == 0, first.out + first.err
    assert all(s["ok"] == 10 and s["failed"] == 0 for s in first.recap.values())
    conf = on_host(lab3, "h2", "cat /etc/app.conf")
    assert conf == f"# managed\nhost=h2\naddr={lab3.hosts[1].ip}\npeers=h1,h2,h3\n"
    again = provision(capsys, lab3.inventory_path, SHARED_SITE)
    assert {h: s["changed"] for h, s in again.recap.items()} == {"h1": 0, "h2": 0, "h3": 0}


# ---------------------------------------------------------------- failures


def test_killed_host_is_unreachable_and_the_others_finish(lab_factory, tmp_path):
    lab = lab_factory(3)
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: false
          tasks:
            - name: warm up
              command: "true"
            - name: long command
              command: sleep 8
            - name: after
              command: hostname
    """)
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterctl", "provision", "-i", str(lab.inventory_path), str(play), "--log-json", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and any(e.get("event") == "task_start" and e.get("task") == "long command" for e in events(log)):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the long command never started")
    time.sleep(0.5)
    lab.stop("h2")  # well inside the 8 s command, even on a loaded machine (3 s was tight there)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    run_ = Run(proc.returncode, out, err)
    assert run_.recap["h2"]["unreachable"] == 1
    assert run_.recap["h1"] == run_.recap["h3"] == {"ok": 3, "changed": 3, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}
    assert "fatal: [h2]: UNREACHABLE!" in out
    results = [(e["host"], e["task"]) for e in events(log) if e["event"] == "host_result"]
    assert ("h1", "after") in results and ("h3", "after") in results and ("h2", "after") not in results


MAX_FAIL_PLAY = """
- hosts: nodes
  gather_facts: false
  serial: {serial}
  max_fail_percentage: {mfp}
  tasks:
    - name: one
      command: "true"
      changed_when: false
      failed_when: inventory_hostname in {fail}
    - name: two
      command: "true"
      changed_when: false
"""


@pytest.mark.parametrize(
    "serial, mfp, fail, ran_two, absent",
    [
        # batches [h1,h2] [h3]: 1 of 2 failed = 50% > 49% → stop: h2 skips 'two', h3 never runs
        (2, 49, ["h1"], set(), {"h3"}),
        # 50% is not greater than 50% → carry on
        (2, 50, ["h1"], {"h2", "h3"}, set()),
        # list serial [1, 2]: batch [h1] fine, batch [h2,h3] has h2 failing: 50% > 40% → stop
        ("[1, 2]", 40, ["h2"], {"h1"}, set()),
        # no serial: one batch of 3, 1/3 = 33% > 30% → stop everywhere
        ("0", 30, ["h1"], set(), set()),
        ("0", 34, ["h1"], {"h2", "h3"}, set()),
        # percent serial: 34% of 3 = 1 host per batch; 1/1 = 100% > 50% → stop after batch 1
        ('"34%"', 50, ["h1"], set(), {"h2", "h3"}),
    ],
)
def test_serial_and_max_fail_percentage_stop_where_ansible_does(capsys, lab3, tmp_path, serial, mfp, fail, ran_two, absent):
    play = write_play(tmp_path, MAX_FAIL_PLAY.format(serial=serial, mfp=mfp, fail=json.dumps(fail)))
    log = tmp_path / "log.jsonl"
    result = provision(capsys, lab3.inventory_path, play, "--log-json", str(log))
    assert result.rc == 2, result.out
    two = {e["host"] for e in events(log) if e["event"] == "host_result" and e["task"] == "two"}
    assert two == ran_two
    assert absent.isdisjoint(result.recap), result.recap
    for h in fail:
        assert result.recap[h]["failed"] == 1


def test_a_whole_failed_batch_stops_the_playbook(capsys, lab3, tmp_path):
    # Ansible: serial 1 and the first batch's only host fails → no later batch runs
    play = write_play(tmp_path, MAX_FAIL_PLAY.replace("  max_fail_percentage: {mfp}\n", "").format(serial=1, fail='["h1"]'))
    result = provision(capsys, lab3.inventory_path, play)
    assert result.rc == 2
    assert set(result.recap) == {"h1"}


def test_failed_host_stops_only_itself_and_any_errors_fatal_stops_all(capsys, lab3, tmp_path):
    body = """
        - hosts: nodes
          gather_facts: false
          {fatal}
          tasks:
            - name: one
              command: "true"
              failed_when: inventory_hostname == 'h3'
            - name: two
              debug: msg="still here"
        - hosts: nodes
          gather_facts: false
          tasks:
            - name: second play
              debug: msg=next
    """
    result = provision(capsys, lab3.inventory_path, write_play(tmp_path, body.format(fatal="")))
    assert result.rc == 2
    assert result.recap["h3"]["failed"] == 1 and result.recap["h3"]["ok"] == 0
    assert result.recap["h1"]["ok"] == 3  # one, two, and the second play (h3 sits it out)
    fatal = provision(capsys, lab3.inventory_path, write_play(tmp_path, body.format(fatal="any_errors_fatal: true"), "f.yml"))
    assert fatal.rc == 2
    assert "still here" not in fatal.out and "next" not in fatal.out


# ---------------------------------------------------------------- keywords


def test_blocks_rescue_always_and_failed_result(capsys, lab3, tmp_path):
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: false
          tasks:
            - name: guarded
              block:
                - name: may fail
                  command: "sh -c 'exit {{ 3 if inventory_hostname == \\"h2\\" else 0 }}'"
                  changed_when: false
                - name: after the failure
                  debug: msg=block-continued
              rescue:
                - name: rescued
                  debug: msg="rc was {{ ansible_failed_result.rc }}"
              always:
                - name: always
                  debug: msg=always-ran
            - name: outer block without rescue
              block:
                - fail: msg=boom
                  when: inventory_hostname == 'h1'
              always:
                - debug: msg=cleanup-on-{{ inventory_hostname }}
            - name: after everything
              debug: msg=end
    """)
    log = tmp_path / "log.jsonl"
    result = provision(capsys, lab3.inventory_path, play, "--log-json", str(log))
    assert result.rc == 2
    assert '"rc was 3"' in result.out
    done = {(e["host"], e["task"]) for e in events(log) if e["event"] == "host_result"}
    assert ("h2", "after the failure") not in done and ("h1", "after the failure") in done
    assert ("h2", "rescued") in done and ("h1", "rescued") not in done
    assert {h for h, t in done if t == "always"} == {"h1", "h2", "h3"}
    assert "cleanup-on-h1" in result.out  # always runs for the host that failed
    assert {h for h, t in done if t == "after everything"} == {"h2", "h3"}
    # the same recap ansible-playbook 2.19 prints for this playbook (checked side by side)
    assert {h: (s["ok"], s["failed"], s["skipped"], s["rescued"]) for h, s in result.recap.items()} == {
        "h1": (4, 1, 0, 0), "h2": (4, 0, 1, 1), "h3": (5, 0, 1, 0)}


def test_handlers_run_only_on_change_with_listen_and_flush(capsys, lab3, tmp_path):
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: false
          vars: {d: /srv/t-handlers}
          tasks:
            - file: path={{ d }} state=directory
            - name: config
              copy: content="v={{ version }}\\n" dest={{ d }}/conf
              notify: [restart app]
            - name: unchanged thing
              copy: content="fixed\\n" dest={{ d }}/fixed
              notify: never ran
            - meta: flush_handlers
            - name: after flush
              command: cat {{ d }}/restarts
              register: restarts
              changed_when: false
            - debug: var=restarts.stdout_lines
          handlers:
            - name: restart app
              shell: echo restarted >> {{ d }}/restarts
            - name: logger
              listen: restart app
              shell: echo logged >> {{ d }}/log
            - name: never ran
              shell: echo wrong >> {{ d }}/never
    """)
    on_host(lab3, "h1", "rm -rf /srv/t-handlers; mkdir -p /srv/t-handlers; echo fixed > /srv/t-handlers/fixed")
    r1 = provision(capsys, lab3.inventory_path, play, "-e", "version=1", "--limit", "h1")
    assert r1.rc == 0, r1.out
    assert on_host(lab3, "h1", "cat /srv/t-handlers/restarts") == "restarted\n"
    assert on_host(lab3, "h1", "cat /srv/t-handlers/log") == "logged\n"
    assert on_host(lab3, "h1", "test -e /srv/t-handlers/never && echo yes || echo no") == "no\n"
    assert '"restarted"' in r1.out  # the handler ran at flush_handlers, before 'after flush'
    r2 = provision(capsys, lab3.inventory_path, play, "-e", "version=1", "--limit", "h1")
    assert r2.rc == 0 and "RUNNING HANDLER" not in r2.out
    r3 = provision(capsys, lab3.inventory_path, play, "-e", "version=2", "--limit", "h1")
    assert r3.rc == 0
    assert on_host(lab3, "h1", "cat /srv/t-handlers/restarts") == "restarted\nrestarted\n"


def test_loops_register_until_retries_when_and_set_fact(capsys, lab3, tmp_path):
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: false
          vars: {d: /srv/t-loops}
          tasks:
            - shell: rm -rf {{ d }} && mkdir -p {{ d }}
            - name: loop with loop_control
              shell: echo {{ fruit.name }} > {{ d }}/{{ fruit.name }}
              loop: [{name: apple}, {name: pear}]
              loop_control: {loop_var: fruit, label: "{{ fruit.name }}"}
              register: made
            - name: with_items flattens
              debug: msg="{{ item }}"
              with_items: [[a, b], c]
              register: seen
            - set_fact:
                made_count: "{{ made.results | length }}"
                items_seen: "{{ seen.results | map(attribute='item') | list }}"
            - name: counter until it reaches 3
              shell: "n=$(cat {{ d }}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {{ d }}/n; echo $n"
              register: counter
              until: counter.stdout | int >= 3
              retries: 5
              delay: 0
            - name: only on h2
              debug: msg=h2-only
              when:
                - inventory_hostname == 'h2'
                - made_count | int == 2
            - assert:
                that:
                  - counter.attempts == 3
                  - items_seen == ['a', 'b', 'c']
                  - made.results[1].fruit.name == 'pear'
                success_msg: all good
    """)
    result = provision(capsys, lab3.inventory_path, play)
    assert result.rc == 0, result.out
    assert "changed: [h1] (item=apple)" in result.out
    assert result.out.count("FAILED - RETRYING: [h1]: counter until it reaches 3") == 2
    assert "h2-only" in result.out and result.out.count("h2-only") == 1
    assert result.recap["h1"]["skipped"] == 1 and result.recap["h2"]["skipped"] == 0
    assert result.out.count('"all good"') == 3
    assert on_host(lab3, "h3", "cat /srv/t-loops/pear") == "pear\n"


def test_tags_select_and_skip(capsys, lab3, tmp_path):
    play = write_play(tmp_path, """
        - hosts: h1
          gather_facts: false
          tasks:
            - {name: t-install, debug: msg=install, tags: [install]}
            - {name: t-config, debug: msg=config, tags: config}
            - {name: t-always, debug: msg=always, tags: [always]}
            - {name: t-never, debug: msg=never, tags: [never, debugonly]}
            - {name: t-plain, debug: msg=plain}
    """)

    def ran(*args: str) -> list[str]:
        r = provision(capsys, lab3.inventory_path, play, *args)
        assert r.rc == 0
        return re.findall(r"TASK \[(t-[a-z]+)\]", r.out)

    assert ran() == ["t-install", "t-config", "t-always", "t-plain"]
    assert ran("--tags", "config") == ["t-config", "t-always"]
    assert ran("--tags", "debugonly") == ["t-always", "t-never"]
    assert ran("--skip-tags", "install,always") == ["t-config", "t-plain"]
    assert ran("--tags", "untagged") == ["t-always", "t-plain"]


def test_run_once_delegate_to_localhost_and_include_tasks(capsys, lab3, tmp_path):
    (tmp_path / "per_item.yml").write_text("- name: per item\n  copy: content='{{ item }}' dest=/srv/t-inc-{{ item }}\n")
    marker = tmp_path / "controller-marker"
    play = write_play(tmp_path, f"""
        - hosts: nodes
          gather_facts: false
          tasks:
            - name: once
              command: hostname
              run_once: true
              register: once
              changed_when: false
            - name: every host saw the same result
              assert:
                that: once.stdout == 'h1'
            - name: on the controller
              shell: echo {{{{ inventory_hostname }}}} >> {marker}
              delegate_to: localhost
            - name: a file on the controller
              copy: content="from {{{{ inventory_hostname }}}}\\n" dest={tmp_path}/copied-{{{{ inventory_hostname }}}}
              delegate_to: localhost
            - include_tasks: per_item.yml
              loop: [x1, x2]
              when: inventory_hostname != 'h3'
    """)
    result = provision(capsys, lab3.inventory_path, play)
    assert result.rc == 0, result.out
    assert sorted(marker.read_text().split()) == ["h1", "h2", "h3"]
    assert (tmp_path / "copied-h2").read_text() == "from h2\n"
    assert "[h1 -> localhost]" in result.out
    assert result.out.count("TASK [once]") == 1
    # as ansible-playbook 2.19 counts it: run_once only on h1, a looped include is one ok per item
    assert {h: (s["ok"], s["skipped"]) for h, s in result.recap.items()} == {"h1": (8, 0), "h2": (7, 0), "h3": (3, 1)}
    assert "included: " in result.out and "per_item.yml for h1, h2 => (item=x2)" in result.out
    assert on_host(lab3, "h2", "cat /srv/t-inc-x2") == "x2"
    assert on_host(lab3, "h3", "test -e /srv/t-inc-x1 && echo yes || echo no") == "no\n"


def test_free_strategy_environment_become_and_include_vars(capsys, lab3, tmp_path):
    (tmp_path / "extra.yml").write_text("from_file: 42\n")
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: true
          strategy: free
          become: true
          environment: {GREETING: hello}
          tasks:
            - include_vars: extra.yml
            - shell: echo "$GREETING $(id -un) {{ from_file }} {{ ansible_hostname }}"
              register: out
              changed_when: false
            - assert:
                that: out.stdout == 'hello root 42 ' ~ inventory_hostname
    """)
    result = provision(capsys, lab3.inventory_path, play)
    assert result.rc == 0, result.out
    assert "TASK [Gathering Facts]" in result.out


def test_pause_uses_the_injected_sleep(lab3, tmp_path, capsys):
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: false
          tasks:
            - pause: seconds=30
            - debug: msg=after
    """)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    args = build_parser().parse_args(["-i", str(lab3.inventory_path), str(play)])
    assert run(args, sleep=fake_sleep) == 0
    assert slept == [30.0]  # once for the batch, not once per host
    assert capsys.readouterr().out.count("after") == 3


def test_command_timeout_end_host_end_play_and_task_check_mode(capsys, lab3, tmp_path):
    play = write_play(tmp_path, """
        - hosts: nodes
          gather_facts: false
          tasks:
            - name: too slow
              command: sleep 300
              timeout: 1
              when: inventory_hostname == 'h1'
              ignore_errors: true
            - name: the host still answers after a timeout
              command: hostname
              register: hn
              changed_when: false
            - name: dry run of one task
              copy: content=x dest=/srv/t-checkmode-{{ inventory_hostname }}
              check_mode: true
            - meta: end_host
              when: inventory_hostname == 'h2'
            - name: not on h2
              debug: msg=after-end-host
        - hosts: nodes
          gather_facts: false
          tasks:
            - meta: end_play
            - name: never
              debug: msg=never-printed
        - hosts: h3
          gather_facts: false
          tasks:
            - name: next play runs
              debug: msg=third-play
    """)
    start = time.monotonic()
    result = provision(capsys, lab3.inventory_path, play)
    assert time.monotonic() - start < 120  # the 300 s command was cut short (loose: a loaded machine)
    assert result.rc == 0, result.out
    assert re.search(r"fatal: \[h1\]: FAILED! => .*timed out after 1", result.out)
    assert result.recap["h1"]["ignored"] == 1
    assert "ok: [h1]" in result.out.split("TASK [the host still answers after a timeout]")[1]
    assert result.out.count("after-end-host") == 2  # h1 and h3
    assert "never-printed" not in result.out and "third-play" in result.out
    assert on_host(lab3, "h1", "test -e /srv/t-checkmode-h1 && echo yes || echo no") == "no\n"


def test_live_progress_on_a_terminal_and_plain_lines_otherwise():
    import io

    from clusterctl.provision.output import RunOutput

    tty = io.StringIO()
    out = RunOutput(tty, tty=True)
    out.play_start("p", ["a", "b"])
    out.task_start("install", 2)
    out.host_result("a", "install", "changed", {"changed": True}, duration=0.1, no_log=False)
    text = tty.getvalue()
    assert "install: 1/2 hosts done" in text and "\r\x1b[K" in text
    assert "changed: [a]" in text
    plain = io.StringIO()
    out = RunOutput(plain, tty=False)
    out.task_start("install", 2)
    out.host_result("a", "install", "changed", {"changed": True}, duration=0.1, no_log=False)
    assert "\r" not in plain.getvalue() and "hosts done" not in plain.getvalue()


SESSION_CASES = [
    dict(command="echo out; echo err >&2; exit 3"),
    dict(command="printf 'no newline'; printf 'err no newline' >&2"),
    dict(command="printf 'two\\n\\n'; printf 'e\\n\\n' >&2"),
    dict(command="exit 0"),
    dict(command="cat", stdin="line1\nline2 with 'quotes' and $(dollar)\n"),
    dict(command="cat", stdin=b"\x00\x01binary\xff"),
    dict(command='echo "$GREETING $OTHER"; pwd', env={"GREETING": "it's $(not run)", "OTHER": "b c"}, cwd="/etc"),
    dict(command="if then fi"),  # a syntax error fails the command, not the session
    dict(command="cd /; exit 7"),
    dict(command="head -c 300000 /dev/zero | tr '\\0' x; echo; seq 1 2000 >&2"),
    dict(command="kill -9 $$"),
]


def test_host_session_answers_exactly_like_a_fresh_channel(lab3):
    import asyncio

    from clusterctl.provision.executor import HostSession
    from clusterctl.provision.connection import HostConnection
    from clusterctl.provision.inventory import connection_spec, load_inventory

    async def compare() -> None:
        spec = connection_spec(load_inventory(str(lab3.inventory_path)), "h1")
        plain = await HostConnection.open(spec)
        session = HostSession(await HostConnection.open(spec))
        await session.start_shell()
        try:
            for case in SESSION_CASES:
                want = await plain.run(**case)
                got = await session.run(**case)
                if case["command"] == "kill -9 $$":
                    assert got.rc == want.rc == 137
                    continue
                if case["command"] == "if then fi":
                    assert got.rc == want.rc == 2 and "syntax error" in got.stderr.lower()
                    continue
                assert got == want, case
            assert (await session.run("echo still here")).stdout == "still here\n"
        finally:
            await plain.close()
            await session.close()

    asyncio.run(compare())


def test_variables_cannot_inject_shell(capsys, lab3, tmp_path):
    evil = "x; touch /srv/t-pwned-1 $(touch /srv/t-pwned-2) `touch /srv/t-pwned-3` | touch /srv/t-pwned-4"
    play = write_play(tmp_path, """
        - hosts: h1
          gather_facts: false
          tasks:
            - command: echo {{ evil }}
              register: out
            - command: printenv EVIL
              environment: {EVIL: "{{ evil }}"}
              register: env_out
            - copy: content=x dest="/srv/t-inject-{{ evil | regex_replace('/', '_') }}"
            - assert:
                that:
                  - out.stdout == evil
                  - env_out.stdout == evil
    """)
    on_host(lab3, "h1", "rm -f /srv/t-pwned-* /srv/t-inject-*")
    result = provision(capsys, lab3.inventory_path, play, "-e", json.dumps({"evil": evil}))
    assert result.rc == 0, result.out
    for n in (1, 2, 3, 4):
        assert on_host(lab3, "h1", f"test -e /srv/t-pwned-{n} && echo yes || echo no") == "no\n"
    assert "t-inject-x; touch _srv_t-pwned-1" in on_host(lab3, "h1", "ls /srv")


def test_vars_files_import_playbook_and_variable_precedence(capsys, lab3, tmp_path):
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "common.yml").write_text("color: blue\nsize: small\n")
    (tmp_path / "inner.yml").write_text(textwrap.dedent("""
        - hosts: h1
          gather_facts: false
          vars: {size: medium, color: red}
          vars_files: [vars/common.yml]
          tasks:
            - debug: msg="{{ color }}-{{ size }}-{{ shape }}"
              vars: {shape: round}
    """).lstrip())
    play = write_play(tmp_path, "- import_playbook: inner.yml\n")
    result = provision(capsys, lab3.inventory_path, play, "-e", "size=large")
    assert result.rc == 0, result.out
    assert '"blue-large-round"' in result.out  # vars_files > play vars; extra vars win


def test_a_daemon_started_by_a_task_leaves_the_session_clean(capsys, lab3, tmp_path):
    play = write_play(tmp_path, """
        - hosts: h3
          gather_facts: false
          tasks:
            - file: path=/etc/clusterctl/services state=directory
            - copy:
                dest: /etc/clusterctl/services/t-sleeper.env
                content: "CC_COMMAND='sleep 1000'\\n"
            - service: name=t-sleeper state=started
              register: first
            - service: name=t-sleeper state=started
              register: second
            - command: echo after
              register: after
            - service: name=t-sleeper state=stopped
            - assert:
                that:
                  - first is changed
                  - second is not changed
                  - after.stdout == 'after'
    """)
    result = provision(capsys, lab3.inventory_path, play)
    assert result.rc == 0, result.out
