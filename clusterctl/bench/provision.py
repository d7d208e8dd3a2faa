"""``clusterctl bench provision --hosts N``: the same 10-task playbook with clusterctl, ansible-core, pyinfra.

The workload is ``shared/bench/provision/`` (``site.yml`` written for Ansible, run unchanged by
clusterctl and ansible-playbook; ``pyinfra_deploy.py`` the same operations for pyinfra). Each tool
gets a fresh lab of N hosts (``clusterctl.lab``), so every first run does the same work from the
same clean state. Baselines are timed around their whole command as a user runs it (a new
process: interpreter start, inventory, connecting, the tasks).

``clusterctl_s`` is the in-process run (the brief allows it: same code as the CLI, imports
excluded); ``clusterctl_cli_s`` is a fresh ``clusterctl provision`` process on fresh hosts, and
the ``*_cli`` speedups use it. ``load_avg_1m`` records how busy the machine was.

Baselines are configured the way the issue asks: ansible-core with forks=N, pipelining on,
ControlPersist, ``gathering = explicit``, host key checking on through the lab's known_hosts;
pyinfra with ``--parallel N`` and a Python inventory carrying each host's address, key and
known_hosts file with strict checking. Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clusterctl.errors import ClusterctlError, UsageError


def bench_dir() -> Path:
    env = os.environ.get("CLUSTERCTL_BENCH_PROVISION_DIR")
    if env:
        path = Path(env)
    else:
        repo_root = Path(__file__).resolve().parent.parent.parent
        path = repo_root.parent / "shared" / "bench" / "provision"
    if not (path / "site.yml").is_file():
        raise UsageError(f"provisioning benchmark workload not found at {path} (set CLUSTERCTL_BENCH_PROVISION_DIR)")
    return path


def _venv_tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name)


def _log(msg: str) -> None:
    print(f"[bench provision] {msg}", file=sys.stderr, flush=True)


def _timed(argv: list[str], *, env: dict | None = None, cwd: str | None = None, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    return time.perf_counter() - start, proc


def _check(proc: subprocess.CompletedProcess, tool: str) -> None:
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-2000:]).strip()
        raise ClusterctlError(f"{tool} failed (exit {proc.returncode}):\n{tail}")


def _recap_changed(stdout: str) -> int:
    return sum(int(m) for m in re.findall(r"changed=(\d+)", stdout.split("PLAY RECAP")[-1]))


class _FreshLab:
    """A fresh lab of N hosts in its own temp folder, removed on exit."""

    def __init__(self, n: int, root: Path, tag: str):
        from clusterctl.lab import Lab

        self.n = n
        self.lab = Lab(root / f"lab-{tag}", owner_pid=os.getpid())

    def __enter__(self):
        self.lab.up(self.n)
        return self.lab

    def __exit__(self, *exc) -> None:
        self.lab.down()


def run_clusterctl(lab, site: Path, n: int) -> dict:
    """In-process: the full run (inventory, parse, checks, connecting, tasks) of the same code the CLI runs."""
    import io

    from clusterctl.provision.cli import build_parser, run

    def once() -> tuple[float, str]:
        args = build_parser().parse_args(["-i", str(lab.inventory_path), str(site), "--forks", str(max(n, 1))])
        buf = io.StringIO()
        start = time.perf_counter()
        rc = run(args, stream=buf)
        elapsed = time.perf_counter() - start
        if rc != 0:
            raise ClusterctlError(f"clusterctl provision failed (exit {rc}):\n{buf.getvalue()[-3000:]}")
        return elapsed, buf.getvalue()

    elapsed, out = once()
    rerun, out2 = once()
    return {"clusterctl_s": elapsed, "clusterctl_rerun_s": rerun, "clusterctl_changed": _recap_changed(out),
            "clusterctl_rerun_changed": _recap_changed(out2)}


def run_clusterctl_cli(lab, site: Path, n: int, workdir: Path) -> dict:
    """As a user runs it: a new ``clusterctl provision`` process (interpreter start and imports included)."""
    argv = [sys.executable, "-m", "clusterctl", "provision", "-i", str(lab.inventory_path), str(site), "--forks", str(max(n, 1))]
    elapsed, proc = _timed(argv, cwd=str(workdir))
    _check(proc, "clusterctl provision (CLI)")
    return {"clusterctl_cli_s": elapsed, "clusterctl_cli_changed": _recap_changed(proc.stdout)}


def run_ansible(lab, site: Path, n: int, workdir: Path) -> dict:
    tool = _venv_tool("ansible-playbook")
    if tool is None:
        raise UsageError("ansible-playbook not found (pip install 'clusterctl[bench]')")
    adir = workdir / "ansible"
    (adir / "cp").mkdir(parents=True, exist_ok=True)
    (adir / "home").mkdir(exist_ok=True)
    cfg = adir / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"forks = {max(n, 1)}\n"
        "gathering = explicit\n"
        "host_key_checking = True\n"
        "retry_files_enabled = False\n"
        "interpreter_python = auto_silent\n"
        f"local_tmp = {adir / 'tmp'}\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"
        f"control_path_dir = {adir / 'cp'}\n",
        encoding="utf-8",
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_HOME=str(adir / "home"), ANSIBLE_NOCOLOR="1")
    elapsed, proc = _timed([tool, "-i", str(lab.inventory_path), str(site)], env=env, cwd=str(adir))
    _check(proc, "ansible-playbook")
    # close the ControlPersist masters so nothing lingers after the lab goes away
    for sock in (adir / "cp").glob("*"):
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "x"], capture_output=True, timeout=10)
    return {"ansible_s": elapsed, "ansible_changed": _recap_changed(proc.stdout)}


def pyinfra_inventory(lab) -> str:
    lines = ["# generated by clusterctl bench provision", "nodes = ["]
    for h in lab.hosts:
        data = {
            "ssh_hostname": h.ip, "ssh_port": 22, "ssh_user": "root", "ssh_key": str(lab.key_path),
            "ssh_known_hosts_file": str(lab.known_hosts_path), "ssh_strict_host_key_checking": "yes",
        }
        lines.append(f"    ({h.name!r}, {data!r}),")
    lines.append("]")
    return "\n".join(lines) + "\n"


def run_pyinfra(lab, deploy: Path, n: int, workdir: Path) -> dict:
    tool = _venv_tool("pyinfra")
    if tool is None:
        raise UsageError("pyinfra not found (pip install 'clusterctl[bench]')")
    pdir = workdir / "pyinfra"
    pdir.mkdir(parents=True, exist_ok=True)
    inv = pdir / "inventory.py"
    inv.write_text(pyinfra_inventory(lab), encoding="utf-8")
    argv = [tool, str(inv), str(deploy), "-y", "--parallel", str(max(n, 1))]
    elapsed, proc = _timed(argv, cwd=str(pdir))
    _check(proc, "pyinfra")
    rerun, proc2 = _timed(argv, cwd=str(pdir))
    _check(proc2, "pyinfra (rerun)")
    return {"pyinfra_s": elapsed, "pyinfra_rerun_s": rerun}


def run_bench(n: int, *, skip_baselines: bool = False) -> dict:
    workload = bench_dir()
    site = workload / "site.yml"
    result: dict = {"hosts": n, "workload": str(workload)}
    with tempfile.TemporaryDirectory(prefix="clusterctl-bench-provision-") as tmp:
        root = Path(tmp)
        import clusterctl.provision.executor  # noqa: F401 - imports are not part of the in-process figure

        _log(f"clusterctl (in-process, then a no-change rerun) on {n} fresh lab hosts")
        with _FreshLab(n, root, "clusterctl") as lab:
            result.update(run_clusterctl(lab, site, n))
        _log(f"clusterctl CLI process on {n} fresh lab hosts")
        with _FreshLab(n, root, "clusterctl-cli") as lab:
            result.update(run_clusterctl_cli(lab, site, n, root))
        if not skip_baselines:
            _log(f"ansible-playbook on {n} fresh lab hosts")
            with _FreshLab(n, root, "ansible") as lab:
                result.update(run_ansible(lab, site, n, root))
            _log(f"pyinfra on {n} fresh lab hosts")
            with _FreshLab(n, root, "pyinfra") as lab:
                result.update(run_pyinfra(lab, workload / "pyinfra_deploy.py", n, root))
    for key in list(result):
        if key.endswith("_s") and isinstance(result[key], float):
            result[key] = round(result[key], 3)
    c, cli = result["clusterctl_s"], result["clusterctl_cli_s"]
    for tool in ("ansible", "pyinfra"):
        base = result.get(f"{tool}_s")
        result[f"speedup_vs_{tool}"] = round(base / c, 2) if base else None
        result[f"speedup_vs_{tool}_cli"] = round(base / cli, 2) if base else None
        result.setdefault(f"{tool}_s", None)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["targets"] = {
        "speedup_vs_ansible_min": 20, "speedup_vs_pyinfra_min": 3, "clusterctl_s_max_at_100_hosts": 5.0,
    }
    return result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="clusterctl bench provision", description=__doc__.split("\n")[0])
    p.add_argument("--hosts", type=int, default=10, help="lab hosts to provision (default 10)")
    p.add_argument("--json", action="store_true", help="print only the JSON object (default anyway)")
    p.add_argument("--skip-baselines", action="store_true", help="run clusterctl only (no ansible-core, no pyinfra)")
    args = p.parse_args(argv)
    if args.hosts < 1:
        p.error("--hosts must be at least 1")
    try:
        result = run_bench(args.hosts, skip_baselines=args.skip_baselines)
    except ClusterctlError as exc:
        print(f"clusterctl bench provision: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0
