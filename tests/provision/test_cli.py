"""``clusterctl provision``: bad input fails before any host is touched; the JSON feed; no_log; exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clusterctl.provision.cli import main, parse_extra_vars


@pytest.fixture
def silent_host(tmp_path):
    """An inventory whose only host is a loopback listener we own: any connection attempt shows."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    inv = tmp_path / "inventory.ini"
    inv.write_text(f"[nodes]\nn1 ansible_host=127.0.0.1 ansible_port={port} ansible_user=root\n")

    def touched() -> bool:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    yield inv, touched
    listener.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


BAD_INPUTS = {
    "yaml_syntax": (
        "- hosts: nodes\n  tasks:\n    - name: ok\n      debug: msg=hi\n    - name: broken\n      debug: {msg: [unclosed}\n",
        ["play.yml:6", "YAML syntax error"],
    ),
    "unknown_module": (
        "- hosts: nodes\n  tasks:\n    - name: install it\n      aptitude_ultra: name=x\n",
        ["play.yml:3", "task 'install it'", "unknown module 'aptitude_ultra'"],
    ),
    "missing_required_arg": (
        "- hosts: nodes\n  tasks:\n    - name: write a file\n      copy: {content: hi}\n",
        ["play.yml:3", "task 'write a file'", "missing required arguments: dest"],
    ),
    "undefined_variable": (
        "- hosts: nodes\n  vars: {port: 80}\n  tasks:\n    - name: use a typo\n      debug: msg=\"{{ prot }}\"\n",
        ["play.yml:4", "task 'use a typo'", "undefined variable 'prot'"],
    ),
    "undefined_in_template": (
        "- hosts: nodes\n  tasks:\n    - name: render\n      template: src=t.j2 dest=/tmp/x\n",
        ["t.j2", "task 'render'", "undefined variable 'nowhere'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_before_touching_any_host(tmp_path, silent_host, capsys, case):
    inv, touched = silent_host
    body, expected = BAD_INPUTS[case]
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text("value={{ nowhere }}\n")
    play = write(tmp_path, "play.yml", body)
    rc = main(["-i", str(inv), str(play)])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.strip().splitlines()) == 1, err
    for part in expected:
        assert part in err, (part, err)
    assert not touched()


def test_missing_inventory_fails_before_touching_any_host(tmp_path, capsys):
    play = write(tmp_path, "play.yml", "- hosts: all\n  tasks: [{debug: msg=hi}]\n")
    rc = main(["-i", str(tmp_path / "nope.ini"), str(play)])
    err = capsys.readouterr().err
    assert rc == 1 and "nope.ini" in err and "does not exist" in err


def test_missing_playbook_and_extra_vars_forms(tmp_path, capsys, silent_host):
    inv, touched = silent_host
    assert main(["-i", str(inv), str(tmp_path / "missing.yml")]) == 1
    assert "missing.yml" in capsys.readouterr().err
    (tmp_path / "ev.yml").write_text("a: 1\nb: [x]\n")
    assert parse_extra_vars(["k=v n=3", f"@{tmp_path / 'ev.yml'}", '{"j": {"x": 1}}', "a=2"]) == {
        "k": "v", "n": "3", "b": ["x"], "j": {"x": 1}, "a": "2"}


def test_the_cli_is_wired_into_clusterctl(tmp_path, silent_host):
    inv, touched = silent_host
    play = write(tmp_path, "play.yml", "- hosts: nodes\n  tasks:\n    - nosuchmodule: {}\n")
    proc = subprocess.run([sys.executable, "-m", "clusterctl", "provision", "-i", str(inv), str(play)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "unknown module 'nosuchmodule'" in proc.stderr
    assert not touched()


@pytest.mark.lab
def test_log_json_feed_and_no_log_secrets(lab3, tmp_path, capsys):
    secret = "s3cr3t-Pa55word-4242"
    play = write(tmp_path, "play.yml", f"""
        - name: secrets
          hosts: nodes
          gather_facts: false
          vars:
            db_password: "{secret}"
          tasks:
            - name: write the secret
              copy:
                content: "password={{{{ db_password }}}}\\n"
                dest: /srv/t-nolog-secret
                mode: "0600"
              no_log: true
            - name: show the secret, quietly
              debug: msg="{{{{ db_password }}}}"
              no_log: true
            - name: fail with the secret
              command: "sh -c 'echo {{{{ db_password }}}}; exit 3'"
              no_log: true
              ignore_errors: true
            - name: loop over secrets
              debug: msg="{{{{ item }}}}"
              loop: ["{{{{ db_password }}}}"]
              no_log: true
            - name: visible
              command: hostname
              changed_when: false
            - name: fail out loud
              command: "sh -c 'echo out-words; echo err-words >&2; exit 7'"
              ignore_errors: true
    """)
    log = tmp_path / "run.jsonl"
    rc = main(["-i", str(lab3.inventory_path), str(play), "--log-json", str(log), "-v", "--diff"])
    out = capsys.readouterr().out
    assert rc == 0, out
    text = log.read_text()
    assert secret not in out and secret not in text
    assert "the output has been hidden due to the fact that 'no_log: true' was specified for this result" in out
    events = [json.loads(line) for line in text.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "playbook_start" and "play_start" in kinds and kinds[-1] == "recap"
    starts = [e["task"] for e in events if e["event"] == "task_start"]
    assert starts == ["write the secret", "show the secret, quietly", "fail with the secret", "loop over secrets", "visible",
                      "fail out loud"]
    results = [e for e in events if e["event"] == "host_result"]
    assert len(results) == 18
    for e in results:
        assert set(e) >= {"host", "task", "status", "changed", "duration_s", "time"}
        assert e["duration_s"] >= 0
    failed = [e for e in results if e["task"] == "fail with the secret"]
    assert {e["status"] for e in failed} == {"failed"} and all(e.get("ignored") for e in failed)
    assert not any({"stdout", "stderr", "rc"} & set(e) for e in failed)  # no_log: the command's words stay hidden
    loud = [e for e in results if e["task"] == "fail out loud"]  # a failure's feed event says what the command said
    assert [(e["status"], e["rc"], e["stdout"], e["stderr"]) for e in loud] == [("failed", 7, "out-words", "err-words")] * 3
    recap = events[-1]["hosts"]
    assert recap["h1"]["ignored"] == 2 and recap["h1"]["failed"] == 0
    assert subprocess.run(lab3.exec_argv("h1", "cat", "/srv/t-nolog-secret"), capture_output=True, text=True).stdout == f"password={secret}\n"


@pytest.mark.lab
def test_exit_codes_follow_ansible(lab3, tmp_path, capsys):
    ok = write(tmp_path, "ok.yml", "- hosts: nodes\n  gather_facts: false\n  tasks: [{command: 'true', changed_when: false}]\n")
    assert main(["-i", str(lab3.inventory_path), str(ok)]) == 0
    bad = write(tmp_path, "bad.yml", "- hosts: nodes\n  gather_facts: false\n  tasks: [{command: 'false'}]\n")
    assert main(["-i", str(lab3.inventory_path), str(bad), "--limit", "h1"]) == 2
    # a host nobody answers for: unreachable → 4 (a closed loopback port)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    inv = tmp_path / "inv.ini"
    inv.write_text(lab3.inventory_path.read_text() + f"\n[gone]\nghost ansible_host=127.0.0.1 ansible_port={port}\n")
    both = write(tmp_path, "both.yml", "- hosts: all\n  gather_facts: false\n  tasks: [{command: 'true'}]\n")
    assert main(["-i", str(inv), str(both), "--accept-new-host-keys"]) == 4
    out = capsys.readouterr().out
    assert "fatal: [ghost]: UNREACHABLE!" in out
    assert "h3 " in out and re_count(out, r"changed: \[h\d\]") == 3


def re_count(text: str, pattern: str) -> int:
    import re

    return len(re.findall(pattern, text))
