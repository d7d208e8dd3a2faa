"""Run a parsed playbook against an inventory: batches, strategies, blocks, handlers, failures.

Shape of a run, as Ansible's linear strategy does it: for each play, its hosts are cut into
``serial`` batches; within a batch each task runs on every still-active host at once (bounded by
``forks``), and the next task starts when all have answered. A failed host stops only itself,
unless ``any_errors_fatal`` or ``max_fail_percentage`` (failed hosts of the *current batch* /
batch size, strictly greater than the threshold, checked after every task) stop the play — and
then the whole playbook, as ``ansible-playbook`` does. Unreachable hosts are dropped for the rest
of the run. The ``free`` strategy runs each host through the play on its own.

Connections: one ``HostConnection`` per host for the whole run, opened in the background as soon
as a play names the host (bounded handshake concurrency), so connecting overlaps with the first
tasks. ``delegate_to: localhost`` runs the module on the controller through ``LocalConnection``
(same ``run/put/get`` API, a local ``sh -c``). The executor itself implements the modules that
only touch variables or the run (``debug``, ``set_fact``, ``assert``, ``fail``, ``meta``,
``include_vars``, ``pause``, ``include_tasks``, ``setup``); every other module comes from
``clusterctl.provision.modules`` and runs over the host's connection.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from clusterctl.errors import ClusterctlError
from clusterctl.provision.connection import CommandResult, ConnectionSpec, HostConnection
from clusterctl.provision.errors import CommandTimeout, HostUnreachable, PlaybookError, ProvisionError, TemplateError
from clusterctl.provision.output import RunOutput
from clusterctl.provision.variables import strip_omitted
from clusterctl.provision.playbook import (
    Block,
    Inherited,
    Play,
    Playbook,
    Task,
    _as_list,
    load_yaml,
    parse_task_file,
)

LOCALHOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: modules that move files over SFTP (their plays get SFTP opened along with the connection)
_FILE_MOVERS = frozenset({"copy", "template", "fetch", "slurp", "unarchive", "script"})
_TRUE = frozenset({"yes", "on", "1", "true", "y", "t"})


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in _TRUE


# ---------------------------------------------------------------- local connection


class LocalConnection:
    """``delegate_to: localhost``: the ``HostConnection`` API, served by local processes."""

    def __init__(self, name: str = "localhost"):
        self.spec = ConnectionSpec(name=name, host="localhost", user=_local_user())

    async def run(self, command: str, *, stdin: bytes | str | None = None, timeout: float | None = None,
                  become: bool = False, become_user: str = "root", env: dict[str, str] | None = None,
                  cwd: str | None = None) -> CommandResult:
        script = command
        if env:
            script = "export " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items()) + "; " + script
        if cwd:
            script = f"cd {shlex.quote(cwd)} && {script}"
        argv = ["sh", "-c", script]
        if become and become_user != self.spec.user:
            argv = ["sudo", "-n", "-H", "-u", become_user, "--"] + argv
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        data = stdin.encode() if isinstance(stdin, str) else stdin
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(data)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise CommandTimeout(f"localhost: command timed out after {timeout}s: {command[:120]}") from exc
        rc = proc.returncode if proc.returncode is not None and proc.returncode >= 0 else 128 - (proc.returncode or 0)
        return CommandResult(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    async def put(self, data: bytes, remote_path: str, *, mode: int | None = None) -> None:
        tmp = f"{remote_path}.clusterctl-tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, remote_path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            from clusterctl.provision.connection import SFTPError

            raise SFTPError(f"localhost: cannot write {remote_path}: {exc.strerror or exc}") from exc

    async def put_file(self, local_path: str | Path, remote_path: str, *, mode: int | None = None) -> None:
        await self.put(Path(local_path).read_bytes(), remote_path, mode=mode)

    async def get(self, remote_path: str) -> bytes:
        try:
            with open(remote_path, "rb") as f:
                return f.read()
        except OSError as exc:
            from clusterctl.provision.connection import SFTPError

            raise SFTPError(f"localhost: cannot read {remote_path}: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        return None


def _local_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


class HostSession:
    """A host as the executor drives it: its ``HostConnection`` plus one long-lived ``sh``.

    Each ``HostConnection.run`` opens an SSH channel, and sshd forks a session and execs a shell
    for it: about 8 ms per command on this machine, most of it CPU on the (shared) host side.
    Here commands go down one shell session that stays open for the whole run instead: each is
    written as one line and runs in a subshell (so ``exit``/``cd`` cannot disturb the session);
    its stdout streams back, then the session sends the exit status and the captured stderr
    between two copies of a per-session token, so a command costs one round-trip and one fork
    (about 1.6 ms, against ~8 ms for a new channel). Same ``run`` signature and
    results as ``HostConnection.run`` (env, cwd, become via sudo, stdin, timeout); when the
    session is busy (a module running commands concurrently) the plain per-channel path is used.

    A dead link reads as ``HostUnreachable``: when sshd dies under a running command, the
    session ends without its marker (or asyncssh hands back a process without exit status).
    """

    def __init__(self, conn: HostConnection):
        self._conn = conn
        self.spec = conn.spec
        self._shell = None
        self._lock = asyncio.Lock()
        self._token = f"__clusterctl_{os.urandom(8).hex()}__"

    def _ssh(self):
        return getattr(self._conn, "ssh", None)

    def _closed(self) -> bool:
        inner = self._ssh()
        if inner is None:
            return False
        transport = getattr(inner, "_transport", None)
        return transport is None or transport.is_closing()

    async def start_shell(self) -> None:
        inner = self._ssh()
        if inner is None or self._shell is not None:
            return
        try:
            self._shell = await inner.create_process("exec sh", encoding=None)
        except (OSError, asyncssh_errors()) as exc:
            raise HostUnreachable(self.spec.name, f"cannot start a shell session: {exc}") from exc

    async def start_sftp(self) -> None:
        try:
            await self._conn.sftp()
        except ClusterctlError:
            pass  # a host without SFTP fails later, on the task that needs it, with the reason

    def _drop_shell(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            try:
                shell.close()
            except Exception:  # noqa: BLE001 - a broken session is being thrown away
                pass

    async def run(self, command: str, *, stdin: bytes | str | None = None, timeout: float | None = None,
                  become: bool = False, become_user: str = "root", env: dict[str, str] | None = None,
                  cwd: str | None = None) -> CommandResult:
        kw = dict(stdin=stdin, timeout=timeout, become=become, become_user=become_user, env=env, cwd=cwd)
        if self._ssh() is None or self._lock.locked():
            return await self._plain(command, **kw)
        async with self._lock:
            if self._shell is None:
                await self.start_shell()
            if timeout is None:
                return await self._in_shell(command, stdin, become, become_user, env, cwd)
            try:
                async with asyncio.timeout(timeout):
                    return await self._in_shell(command, stdin, become, become_user, env, cwd)
            except TimeoutError as exc:
                self._drop_shell()  # the command may still run; never reuse a session mid-command
                raise CommandTimeout(f"{self.spec.name}: command timed out after {timeout}s: {command[:120]}") from exc

    async def _plain(self, command: str, **kw) -> CommandResult:
        res = await self._conn.run(command, **kw)
        if res.rc == 255 and self._closed():
            raise HostUnreachable(self.spec.name, "connection lost while a command ran")
        return res

    async def _in_shell(self, command, stdin, become, become_user, env, cwd) -> CommandResult:
        """One command down the session: its stdout streams back as is; its stderr is captured by
        the session shell and sent after it, framed by the session token, with the exit status.
        Everything comes back on the one stdout stream (one packet less per command than a
        separate stderr marker: measured 30% faster, 35% less controller CPU)."""
        import base64

        script = command
        if env:
            script = "export " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items()) + "; " + script
        if cwd:
            script = f"cd {shlex.quote(cwd)} && {script}"
        if become and not (self.spec.user == "root" and become_user == "root"):
            inner = f"sudo -n -H -u {shlex.quote(become_user)} -- sh -c {shlex.quote(script)}"
        elif "$$" in script or "PPID" in script:
            inner = f"sh -c {shlex.quote(script)}"  # its own process, so $$ is the command, not the session
        else:
            # runs in the command substitution's subshell: a fork, no exec; a syntax error stays inside
            inner = f"eval {shlex.quote(script)}"
        redirect = "2>&1 1>&3 3>&-"
        if stdin is None:
            body = f"{inner} {redirect} </dev/null"
        else:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            body = f"printf %s {base64.b64encode(data).decode()} | base64 -d | {inner} {redirect}"
        token = self._token  # one per session: asyncssh compiles a regex per distinct separator
        # the token after stderr keeps its trailing newlines through $( ) and marks a complete capture
        line = (
            f"{{ __cc_e=$( trap 'printf %s :{token}' EXIT; {body} ); }} 3>&1; "
            f"printf '\\n{token} %d\\n%s\\n{token}\\n' $? \"$__cc_e\"\n"
        )
        shell = self._shell
        shell.stdin.write(line.encode())
        try:
            out = await shell.stdout.readuntil(f"\n{token} ".encode())
            tail = await shell.stdout.readuntil(f"\n{token}\n".encode())
        except asyncio.CancelledError:
            self._drop_shell()
            raise
        except Exception as exc:  # noqa: BLE001 - EOF, a lost link, garbage: this session is over
            self._drop_shell()
            if self._closed():
                raise HostUnreachable(self.spec.name, "connection lost while a command ran") from exc
            return CommandResult(255, "", f"shell session ended unexpectedly: {exc}")
        rc_text, _, err = tail[: -len(token) - 2].partition(b"\n")
        tok = b":" + token.encode()
        if err.endswith(tok):
            err = err[: -len(tok)]
        try:
            rc = int(rc_text.strip() or b"255")
        except ValueError:
            rc = 255
        return CommandResult(
            rc,
            out[: -len(token) - 2].decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    async def close(self) -> None:
        self._drop_shell()
        await self._conn.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def asyncssh_errors():
    import asyncssh

    return asyncssh.Error


# ---------------------------------------------------------------- run state


@dataclass
class ExecOptions:
    check: bool = False
    diff: bool = False
    forks: int = 100
    handshake_concurrency: int = 50
    tags: frozenset = frozenset()
    skip_tags: frozenset = frozenset()
    limit: str | None = None
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    command_timeout: float | None = None
    verbosity: int = 0
    #: how the executor waits (``pause``, retry delays): inject a fake in tests
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: overrides every retry ``delay`` (tests)
    retry_delay: float | None = None
    fetch_root: Path | None = None


@dataclass
class HostState:
    name: str
    failed: bool = False
    unreachable: bool = False
    ended: bool = False
    #: failed inside a block that has a rescue: the failure is pending, not final
    rescue_pending: bool = False
    notified: list = field(default_factory=list)
    facts_gathered: bool = False

    @property
    def active(self) -> bool:
        return not (self.failed or self.unreachable or self.ended)


@dataclass
class PlayRun:
    play: Play
    batch: list[HostState]
    vars_files_vars: dict
    role_defaults: dict
    role_vars: dict
    stop: bool = False
    break_playbook: bool = False
    printed: set = field(default_factory=set)


@dataclass
class TaskOutcome:
    host: HostState
    status: str  # ok / changed / failed / skipped / unreachable
    result: dict
    ignored: bool = False


class _EndPlay(Exception):
    pass


class PlaybookExecutor:
    """Runs one ``Playbook``. ``await run()`` returns Ansible's exit code (0, 2 failed, 4 unreachable)."""

    def __init__(self, playbook: Playbook, inventory, variables, output: RunOutput, options: ExecOptions | None = None):
        self.playbook = playbook
        self.inventory = inventory
        self.vm = variables
        self.out = output
        self.opts = options or ExecOptions()
        self.hosts: dict[str, HostState] = {}
        self._conns: dict[str, asyncio.Task] = {}
        self._handshakes = asyncio.Semaphore(max(1, self.opts.handshake_concurrency))
        self._forks = asyncio.Semaphore(max(1, self.opts.forks))
        self._local = LocalConnection()
        self._templar_cls = None
        self._moves_files = any(t.action in _FILE_MOVERS for t in playbook.all_tasks())

    # -- connections

    def _connect_soon(self, host: str) -> asyncio.Task:
        task = self._conns.get(host)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(host))
            self._conns[host] = task
        return task

    async def _open(self, host: str):
        spec = self._connection_spec(host)
        async with self._handshakes:
            conn = await HostConnection.open(spec)
        session = HostSession(conn)
        if self._moves_files:
            # the play copies files: open SFTP now, in the same round-trips as the shell
            await asyncio.gather(session.start_shell(), session.start_sftp())
        else:
            await session.start_shell()
        return session

    def _connection_spec(self, host: str) -> ConnectionSpec:
        from clusterctl.provision.inventory import connection_spec

        try:
            hv = self.vm.get_vars(host)
            templar = self._templar(hv)
            conn_vars = {k: templar.render(v) for k, v in hv.items() if isinstance(k, str) and k.startswith("ansible_") and k != "ansible_facts"}
        except ClusterctlError:
            conn_vars = {k: v for k, v in self.inventory.host_vars(host).items() if k.startswith("ansible_")}
        return connection_spec(conn_vars, host, known_hosts=self.opts.known_hosts, accept_new=self.opts.accept_new_host_keys)

    async def connection(self, host: str):
        task = self._connect_soon(host)
        return await asyncio.shield(task)

    async def close(self) -> None:
        for task in self._conns.values():
            if not task.done():
                task.cancel()
        for task in self._conns.values():
            try:
                conn = await task
            except BaseException:  # noqa: BLE001 - a failed or cancelled open has nothing to close
                continue
            await conn.close()

    def _is_local(self, host: str) -> bool:
        if host in LOCALHOSTS:
            h = self.inventory.get_host(host) if hasattr(self.inventory, "get_host") else None
            if h is None:
                return True
            conn = (self.inventory.host_vars(host) or {}).get("ansible_connection")
            return conn == "local" or getattr(h, "implicit", False)
        try:
            return (self.inventory.host_vars(host) or {}).get("ansible_connection") == "local"
        except ClusterctlError:
            return False

    # -- templating helpers

    def _templar(self, variables: dict, searchpath: list | None = None):
        if self._templar_cls is None:
            from clusterctl.provision.templating import Templar

            self._templar_cls = Templar
        return self._templar_cls(variables, searchpath=searchpath) if searchpath else self._templar_cls(variables)

    def _task_vars(self, task: Task | None, host: str, prun: PlayRun, extra: dict | None = None) -> dict:
        role = task.inh.role if task is not None else None
        defaults = prun.role_defaults
        rvars = prun.role_vars
        if role is not None:
            defaults = {**defaults, **role.defaults}
            rvars = {**rvars, **role.vars}
        kwargs = dict(
            play_vars=prun.play.vars, vars_files_vars=prun.vars_files_vars, role_defaults=defaults, role_vars=rvars,
        )
        if task is not None:
            kwargs.update(block_vars=task.inh.vars, task_vars=task.kw.get("vars") or {}, include_params=task.inh.include_params)
        variables = self.vm.get_vars(host, **kwargs)
        variables.setdefault("playbook_dir", str(prun.play.base_dir))
        if role is not None:
            variables["role_path"] = str(role.path)
            variables["role_name"] = role.name
        if extra:
            variables.update(extra)
        return variables

    # -- the run

    async def run(self) -> int:
        self.out.playbook_start(str(self.playbook.path))
        all_names: list[str] = []
        try:
            for play in self.playbook.plays:
                names = self._play_hosts(play)
                for n in names:
                    if n not in all_names:
                        all_names.append(n)
                stop = await self._run_play(play, names)
                if stop:
                    break
        finally:
            await self.close()
        shown = [n for n in all_names if n in self.out.stats] + [n for n in self.out.stats if n not in all_names]
        self.out.recap(sorted(shown))
        if any(h.unreachable for h in self.hosts.values()):
            return 4
        if any(h.failed for h in self.hosts.values()):
            return 2
        return 0

    def _play_hosts(self, play: Play) -> list[str]:
        pattern = play.hosts
        if "{{" in pattern:
            pattern = str(self._templar(self._extra_vars()).render(pattern))
        names = self.inventory.select(pattern)
        if self.opts.limit:
            allowed = set(self.inventory.select(self.opts.limit))
            names = [n for n in names if n in allowed]
        return names

    async def _run_play(self, play: Play, names: list[str]) -> bool:
        """Run one play; True when the playbook must stop (Ansible's break_play)."""
        states = []
        for n in names:
            hs = self.hosts.setdefault(n, HostState(n))
            if hs.unreachable or hs.failed:
                continue  # hosts that failed earlier in the run sit out later plays
            hs.ended = False
            states.append(hs)
        self.out.play_start(play.name, [h.name for h in states])
        if hasattr(self.vm, "clear_play"):
            self.vm.clear_play()
            self.vm.set_play_hosts_all([h.name for h in states])
        if not states:
            self.out.no_hosts(play.name)
            self.out.play_end(play.name)
            return False
        for hs in states:
            if not self._is_local(hs.name):
                self._connect_soon(hs.name)
        batches = _serial_batches(states, play.serial, self._render_play_value)
        stop = False
        for batch in batches:
            prun = PlayRun(play=play, batch=batch, vars_files_vars={}, role_defaults={}, role_vars={})
            for role in play.roles:
                prun.role_defaults.update(role.defaults)
                prun.role_vars.update(role.vars)
            if hasattr(self.vm, "set_play_batch"):
                self.vm.set_play_batch([h.name for h in batch])
            self.vm.set_play_hosts([h.name for h in batch])
            try:
                prun.vars_files_vars = self._load_vars_files(play, batch[0].name, prun)
            except ClusterctlError as exc:
                for hs in batch:
                    self._record(TaskOutcome(hs, "failed", {"failed": True, "msg": str(exc)}), "vars_files", 0.0, False)
                    hs.failed = True
                stop = True
                break
            await self._run_batch(prun)
            self.out.play_end(play.name)
            if prun.break_playbook:
                stop = True
                break
            if all(h.failed or h.unreachable for h in batch):
                stop = True  # Ansible stops the playbook when a whole batch is lost
                break
        return stop

    def _render_play_value(self, value: Any) -> Any:
        if isinstance(value, str) and "{{" in value:
            return self._templar(self._extra_vars()).render(value)
        return value

    def _extra_vars(self) -> dict:
        return dict(getattr(self.vm, "extra_vars", {}) or {})

    def _load_vars_files(self, play: Play, host: str, prun: PlayRun) -> dict:
        merged: dict = {}
        for entry in play.vars_files:
            candidates = _as_list(entry)
            loaded = False
            for name in candidates:
                variables = self._task_vars(None, host, prun)
                path_text = self._templar(variables).render(str(name))
                path = Path(path_text)
                if not path.is_absolute():
                    path = play.base_dir / path
                if path.is_file():
                    data = load_yaml(path) or {}
                    if not isinstance(data, dict):
                        raise PlaybookError(f"{path}: vars_files entry must be a mapping")
                    merged.update(data)
                    loaded = True
                    break
            if not loaded:
                raise PlaybookError(f"{play.file}:{play.line}: play {play.name!r}: vars_files {entry!r} not found")
        return merged

    async def _run_batch(self, prun: PlayRun) -> None:
        play = prun.play
        if play.strategy == "free":
            await asyncio.gather(*(self._run_play_sections(prun, [hs]) for hs in prun.batch))
        else:
            await self._run_play_sections(prun, prun.batch)

    async def _run_play_sections(self, prun: PlayRun, hosts: list[HostState]) -> None:
        play = prun.play
        try:
            if to_bool(self._render_play_value(play.gather_facts)):
                await self._gather_facts(prun, hosts)
            for section in (play.pre_tasks, play.main_tasks, play.post_tasks):
                await self._run_items(section, hosts, prun, rescuable=False)
                if prun.stop:
                    return
                await self._flush_handlers(prun, hosts)
                if prun.stop:
                    return
        except _EndPlay:
            return

    # -- walking the task tree

    async def _run_items(self, items: list, hosts: list[HostState], prun: PlayRun, *, rescuable: bool) -> None:
        for item in items:
            if prun.stop:
                return
            active = [h for h in hosts if h.active]
            if not active:
                return
            if isinstance(item, Block):
                await self._run_block(item, active, prun, rescuable=rescuable)
            else:
                await self._run_task(item, active, prun, rescuable=rescuable)

    async def _run_block(self, block: Block, hosts: list[HostState], prun: PlayRun, *, rescuable: bool) -> None:
        has_rescue = bool(block.rescue)
        await self._run_items(block.block, hosts, prun, rescuable=rescuable or has_rescue)
        if prun.stop:
            return
        if has_rescue:
            to_rescue = [h for h in hosts if h.failed and h.rescue_pending and not h.unreachable]
            for h in to_rescue:
                h.failed = False
                h.rescue_pending = False
            if to_rescue:
                await self._run_items(block.rescue, to_rescue, prun, rescuable=rescuable)
        if block.always:
            entered = [h for h in hosts if not h.unreachable and not h.ended]
            was_failed = {h.name: (h.failed, h.rescue_pending) for h in entered}
            for h in entered:
                h.failed = False
            await self._run_items(block.always, entered, prun, rescuable=rescuable)
            for h in entered:
                f, rp = was_failed[h.name]
                if f:
                    h.failed = True
                    h.rescue_pending = rp or h.rescue_pending
        if not rescuable:
            for h in hosts:
                if h.failed and h.rescue_pending:
                    h.rescue_pending = False

    def _selected(self, task: Task) -> bool:
        tags = set(task.tags)
        only, skip = self.opts.tags, self.opts.skip_tags
        if skip:
            if tags & skip or ("all" in skip and "always" not in tags and "never" not in tags):
                return False
            if "tagged" in skip and tags:
                return False
            if "untagged" in skip and not tags:
                return False
        if not only or "all" in only:
            if "never" in tags and "never" not in only:
                return False
            return True
        if "always" in tags and "always" not in skip:
            return True
        if tags & only:
            return True
        if "tagged" in only and tags and "never" not in tags:
            return True
        if "untagged" in only and not tags:
            return True
        return False

    async def _run_task(self, task: Task, hosts: list[HostState], prun: PlayRun, *, rescuable: bool, handler: bool = False) -> None:
        if not handler and not self._selected(task):
            return
        if task.action == "meta":
            await self._run_meta(task, hosts, prun)
            return
        if task.action == "include_tasks":
            await self._run_include(task, hosts, prun, rescuable=rescuable)
            return
        if prun.play.strategy != "free":
            # ansible_play_hosts: the batch's hosts that have not failed (yet)
            self.vm.set_play_hosts([h.name for h in prun.batch if h.active])
        run_once = to_bool(task.inh.run_once)
        targets = hosts[:1] if run_once else hosts
        self.out.task_start(task.display_name, len(targets), task_id=id(task) if prun.play.strategy == "free" else None,
                            handler=handler, where=task.where)
        if task.action == "pause":
            outcomes = await self._run_pause(task, targets, prun)
        else:
            outcomes = await asyncio.gather(*(self._execute_on(task, hs, prun, rescuable) for hs in targets))
        if run_once and outcomes:
            first = outcomes[0]
            for hs in hosts[1:]:
                if task.kw.get("register") and first.status != "unreachable":
                    self.vm.register(hs.name, str(task.kw["register"]), first.result)
                facts = first.result.get("ansible_facts") if task.action in ("set_fact", "include_vars") else None
                if facts:
                    for k, v in facts.items():
                        self.vm.set_fact(hs.name, k, v)
                if first.status == "changed":
                    self._notify(task, hs)
                if first.status == "failed" and not first.ignored:
                    self._fail_host(hs, rescuable)
        self.out.task_end(task.display_name)
        self._after_task(task, outcomes, hosts, prun)

    def _after_task(self, task: Task, outcomes: list[TaskOutcome], hosts: list[HostState], prun: PlayRun) -> None:
        """Ansible's linear-strategy checks after each task: any_errors_fatal, then max_fail_percentage."""
        if prun.play.strategy == "free" or not outcomes:
            return
        fatal = to_bool(task.inh.any_errors_fatal) or to_bool(self._render_play_value(prun.play.any_errors_fatal))
        if fatal and any((o.status == "failed" and not o.ignored and not o.host.rescue_pending) or o.status == "unreachable" for o in outcomes):
            for hs in prun.batch:
                if hs.active:
                    hs.failed = True
            prun.stop = True
            prun.break_playbook = True
            return
        mfp = prun.play.max_fail_percentage
        if mfp is not None:
            threshold = float(str(self._render_play_value(mfp)).rstrip("%")) / 100.0
            failed_now = sum(1 for h in prun.batch if h.failed and not h.rescue_pending and not h.unreachable)
            if failed_now / len(prun.batch) > threshold:
                for hs in prun.batch:
                    if hs.active:
                        hs.failed = True
                self.out.message("NO MORE HOSTS LEFT " + "*" * 62)
                prun.stop = True
                prun.break_playbook = True

    def _fail_host(self, hs: HostState, rescuable: bool) -> None:
        hs.failed = True
        hs.rescue_pending = rescuable

    def _notify(self, task: Task, hs: HostState) -> None:
        names = _as_list(task.kw.get("notify")) + list(task.inh.notify)
        for n in names:
            n = str(n)
            if n not in hs.notified:
                hs.notified.append(n)

    # -- one task on one host

    async def _execute_on(self, task: Task, hs: HostState, prun: PlayRun, rescuable: bool) -> TaskOutcome:
        async with self._forks:
            self.out.host_start(hs.name, task.display_name)
            start = time.monotonic()
            outcome = await self._execute(task, hs, prun, rescuable)
            duration = time.monotonic() - start
        no_log = self._no_log(task, hs, prun)
        self._record(outcome, task, duration, no_log)
        return outcome

    def _no_log(self, task: Task, hs: HostState, prun: PlayRun) -> bool:
        value = task.inh.no_log
        if isinstance(value, str) and "{{" in value:
            try:
                value = self._templar(self._task_vars(task, hs.name, prun)).render(value)
            except ClusterctlError:
                return True
        return to_bool(value)

    def _record(self, outcome: TaskOutcome, task: Task | str, duration: float, no_log: bool) -> None:
        hs = outcome.host
        name = task.display_name if isinstance(task, Task) else str(task)
        stats = self.out.host_stats(hs.name)
        status = outcome.status
        loop = isinstance(outcome.result.get("results"), list) and isinstance(task, Task) and _has_loop(task)
        delegated = outcome.result.get("_delegated_to")
        result = {k: v for k, v in outcome.result.items() if k != "_delegated_to"}
        if status == "unreachable":
            stats.unreachable += 1
        elif status == "skipped":
            stats.skipped += 1
        elif status == "failed":
            if outcome.ignored:
                stats.ok += 1
                stats.ignored += 1
                if result.get("changed"):
                    stats.changed += 1
            elif hs.rescue_pending:
                stats.rescued += 1
            else:
                stats.failed += 1
        else:
            stats.ok += 1
            if status == "changed":
                stats.changed += 1
        self.out.host_result(hs.name, name, status, result, duration=duration, no_log=no_log, loop=loop,
                             ignored=outcome.ignored, delegated=delegated,
                             action=task.action if isinstance(task, Task) else "")

    async def _execute(self, task: Task, hs: HostState, prun: PlayRun, rescuable: bool) -> TaskOutcome:
        try:
            variables = self._task_vars(task, hs.name, prun)
            templar = self._templar(variables)
            items = self._loop_items(task, templar)
            if items is None:
                if not self._when(task, templar):
                    return TaskOutcome(hs, "skipped", _skip_result(task))
                result = await self._attempts(task, hs, prun, variables)
            else:
                result = await self._run_loop(task, hs, prun, variables, items)
        except HostUnreachable as exc:
            hs.unreachable = True
            return TaskOutcome(hs, "unreachable", {"unreachable": True, "changed": False, "msg": exc.reason})
        except asyncio.CancelledError:
            raise
        except ClusterctlError as exc:
            result = {"failed": True, "changed": False, "msg": f"{task.where}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - one host's surprise must not take down the run
            result = {"failed": True, "changed": False, "msg": f"{task.where}: internal error: {type(exc).__name__}: {exc}"}
        return self._conclude(task, hs, prun, result, rescuable)

    def _conclude(self, task: Task, hs: HostState, prun: PlayRun, result: dict, rescuable: bool) -> TaskOutcome:
        if result.get("unreachable"):
            hs.unreachable = True
            return TaskOutcome(hs, "unreachable", result)
        register = task.kw.get("register")
        if register:
            self.vm.register(hs.name, str(register), result)
        if result.get("skipped"):
            return TaskOutcome(hs, "skipped", result)
        if result.get("failed"):
            ignored = self._ignore_errors(task, hs, prun)
            if not ignored:
                self._fail_host(hs, rescuable)
                if hs.rescue_pending:
                    self.vm.set_fact(hs.name, "ansible_failed_result", result)
                    self.vm.set_fact(hs.name, "ansible_failed_task", {"name": task.name or task.action, "action": task.action})
            return TaskOutcome(hs, "failed", result, ignored=ignored)
        if result.get("changed"):
            self._notify(task, hs)
            return TaskOutcome(hs, "changed", result)
        return TaskOutcome(hs, "ok", result)

    def _ignore_errors(self, task: Task, hs: HostState, prun: PlayRun) -> bool:
        value = task.inh.ignore_errors
        if isinstance(value, str) and "{{" in value:
            value = self._templar(self._task_vars(task, hs.name, prun)).render(value)
        return to_bool(value)

    def _when(self, task: Task, templar) -> bool:
        for cond in task.when:
            if isinstance(cond, bool):
                ok = cond
            elif cond is None:
                ok = True
            else:
                ok = templar.evaluate_condition(cond)
            if not ok:
                return False
        return True

    def _loop_items(self, task: Task, templar) -> list | None:
        kw = task.kw
        if "loop" in kw:
            items = templar.render(kw["loop"])
            if isinstance(items, str):
                raise PlaybookError(f"{task.where}: loop must be a list, got the string {items!r}")
            return list(items or [])
        for key in ("with_items", "with_list", "with_indexed_items", "with_dict", "with_fileglob"):
            if key in kw:
                value = kw[key]
                if isinstance(value, str) and "{{" not in value and key != "with_fileglob":
                    value = "{{ " + value + " }}"
                items = templar.render(value)
                if key == "with_items":
                    flat: list = []
                    for it in _as_list(items):
                        flat.extend(it if isinstance(it, list) else [it])
                    return flat
                if key == "with_indexed_items":
                    return [[i, v] for i, v in enumerate(_as_list(items))]
                if key == "with_dict":
                    return [{"key": k, "value": v} for k, v in (items or {}).items()]
                if key == "with_fileglob":
                    import glob

                    out: list = []
                    for pattern in _as_list(items):
                        base = task.inh.role.files_dir if task.inh.role else task.inh.base_dir
                        out.extend(sorted(glob.glob(str(base / pattern) if not os.path.isabs(pattern) else pattern)))
                    return out
                return list(_as_list(items))
        return None

    async def _run_loop(self, task: Task, hs: HostState, prun: PlayRun, variables: dict, items: list) -> dict:
        lc = task.kw.get("loop_control") or {}
        loop_var = str(lc.get("loop_var", "item"))
        index_var = lc.get("index_var")
        label_tpl = lc.get("label")
        pause = float(lc.get("pause", 0) or 0)
        results: list[dict] = []
        no_log = self._no_log(task, hs, prun)
        for idx, item in enumerate(items):
            ivars = dict(variables)
            ivars[loop_var] = item
            ivars["ansible_loop_var"] = loop_var
            if index_var:
                ivars[str(index_var)] = idx
            ivars["ansible_loop"] = {"index": idx + 1, "index0": idx, "first": idx == 0, "last": idx == len(items) - 1,
                                     "length": len(items), "revindex": len(items) - idx, "revindex0": len(items) - idx - 1}
            templar = self._templar(ivars)
            label = templar.render(label_tpl) if label_tpl is not None else item
            if not self._when(task, templar):
                r = _skip_result(task)
            else:
                r = await self._attempts(task, hs, prun, ivars)
            r[loop_var] = item
            r["ansible_loop_var"] = loop_var
            if index_var:
                r[str(index_var)] = idx
            if r.get("unreachable"):
                raise HostUnreachable(hs.name, str(r.get("msg", "unreachable")))
            status = "skipped" if r.get("skipped") else "failed" if r.get("failed") else "changed" if r.get("changed") else "ok"
            self.out.item_result(hs.name, task.display_name, status, label, r, no_log=no_log,
                                 delegated=r.get("_delegated_to"))
            r.pop("_delegated_to", None)
            results.append(r)
            if pause and idx < len(items) - 1:
                await self.opts.sleep(pause)
        result: dict = {"results": results, "changed": any(r.get("changed") for r in results), "msg": "All items completed"}
        if results and all(r.get("skipped") for r in results):
            result["skipped"] = True
            result["msg"] = "All items skipped"
        if any(r.get("failed") for r in results):
            result["failed"] = True
            result["msg"] = "One or more items failed"
        else:
            result["failed"] = False
        return result

    async def _attempts(self, task: Task, hs: HostState, prun: PlayRun, variables: dict) -> dict:
        until = task.kw.get("until")
        retries_kw = task.kw.get("retries")
        templar = self._templar(variables)
        attempts = 1
        if retries_kw is not None:
            attempts += max(0, int(templar.render(retries_kw)))
        elif until is not None:
            attempts += 3
        delay = float(templar.render(task.kw.get("delay", 5)))
        if self.opts.retry_delay is not None:
            delay = self.opts.retry_delay
        register = task.kw.get("register")
        result: dict = {}
        for attempt in range(1, attempts + 1):
            result = await self._attempt(task, hs, prun, variables)
            if result.get("unreachable"):
                return result
            if attempts > 1:
                result["attempts"] = attempt
            result = self._apply_conditions(task, result, variables, register)
            if attempts == 1:
                break
            vars_now = dict(variables)
            if register:
                vars_now[str(register)] = result
            conds = _as_list(until) if until is not None else None
            done = (not result.get("failed")) if conds is None else all(
                self._templar(vars_now).evaluate_condition(c) for c in conds
            )
            if done:
                break
            if attempt < attempts:
                self.out.retry(hs.name, task.display_name, attempts - attempt, result, self._no_log(task, hs, prun))
                await self.opts.sleep(delay)
        else:
            if attempts > 1:
                result["attempts"] = attempts - 1
                result["failed"] = True
        return result

    def _apply_conditions(self, task: Task, result: dict, variables: dict, register: Any) -> dict:
        if "failed" not in result:
            result["failed"] = "rc" in result and result["rc"] not in (0, "0")
        result.setdefault("changed", False)
        if result.get("skipped"):
            return result
        cw, fw = task.kw.get("changed_when"), task.kw.get("failed_when")
        if cw is None and fw is None:
            return result
        vars_now = dict(variables)
        if register:
            vars_now[str(register)] = result
        templar = self._templar(vars_now)
        try:
            if cw is not None:
                result["changed"] = all(_truth(templar, c) for c in _as_list(cw))
            if fw is not None:
                result["failed"] = result["failed_when_result"] = any(_truth(templar, c) for c in _as_list(fw)) if isinstance(fw, list) else _truth(templar, fw)
        except ClusterctlError as exc:
            result["failed"] = True
            result["msg"] = f"{task.where}: error while evaluating conditional: {exc}"
        return result

    async def _attempt(self, task: Task, hs: HostState, prun: PlayRun, variables: dict) -> dict:
        templar = self._templar(variables)
        args = render_keeping_newlines(templar, task.args) if task.args else {}
        omit = variables.get("omit")
        if omit is not None:
            args = strip_omitted(args, omit)
        action = task.action
        handler = _EXECUTOR_ACTIONS.get(action)
        if handler is not None:
            return await handler(self, task, hs, prun, args, variables, templar)
        return await self._run_host_module(task, hs, prun, args, variables, templar)

    def _check_mode(self, task: Task, templar) -> bool:
        value = task.inh.check_mode
        if value is None:
            return self.opts.check
        return to_bool(templar.render(value) if isinstance(value, str) else value)

    async def _run_host_module(self, task: Task, hs: HostState, prun: PlayRun, args: dict, variables: dict, templar) -> dict:
        from clusterctl.provision import modules as host_modules

        spec = host_modules.get_module(task.action)
        delegate = task.inh.delegate_to
        delegated_name = None
        if delegate is not None:
            delegated_name = str(templar.render(delegate))
        if delegated_name and (delegated_name in LOCALHOSTS or self._is_local(delegated_name)):
            conn = self._local
        elif delegated_name and delegated_name != hs.name:
            conn = await self.connection(delegated_name)
        elif self._is_local(hs.name):
            conn = self._local
        else:
            conn = await self.connection(hs.name)
        become = task.inh.become
        if become is None:
            become = variables.get("ansible_become", False)
        become_user = task.inh.become_user or variables.get("ansible_become_user") or "root"
        environment: dict = {}
        for env in task.inh.environment:
            rendered = templar.render(env)
            if isinstance(rendered, dict):
                environment.update({str(k): str(v) for k, v in rendered.items()})
        timeout = task.inh.timeout if task.inh.timeout is not None else self.opts.command_timeout
        searchpath = self._search_dirs(task, prun, "templates")

        def render_template(path: Path) -> str:
            t = self._templar(variables, searchpath=[str(Path(path).parent)] + [str(p) for p in searchpath])
            return t.render_file(str(path))

        def find_file(kind: str, name: str) -> Path:
            return self._find_file(task, prun, kind, name)

        ctx_kwargs = dict(
            conn=conn, host=hs.name, check_mode=self._check_mode(task, templar),
            diff=self.opts.diff if task.inh.diff is None else to_bool(task.inh.diff),
            become=to_bool(templar.render(become) if isinstance(become, str) else become),
            become_user=str(templar.render(become_user)), environment=environment,
            timeout=float(timeout) if timeout is not None else None, no_log=self._no_log(task, hs, prun),
            render_template=render_template, find_file=find_file,
            fetch_root=self.opts.fetch_root or prun.play.base_dir,
        )
        from clusterctl.provision.modules.context import ModuleContext

        ctx = ModuleContext(**ctx_kwargs)
        try:
            spec.check_args(args)
        except ClusterctlError as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        try:
            result = await spec.run(ctx, args)
        except CommandTimeout as exc:
            return {"failed": True, "changed": False, "msg": str(exc)}
        if not isinstance(result, dict):
            result = {"failed": True, "msg": f"module {task.action} returned {type(result).__name__}, not a result"}
        if delegated_name:
            result["_delegated_to"] = delegated_name
        if result.get("ansible_facts"):
            self.vm.set_facts(hs.name, result["ansible_facts"])
        return result

    def _search_dirs(self, task: Task, prun: PlayRun, kind: str) -> list[Path]:
        dirs: list[Path] = []
        if task.inh.role is not None:
            dirs += [task.inh.role.path / kind, task.inh.role.path, task.inh.role.tasks_dir]
        dirs += [task.inh.base_dir / kind, task.inh.base_dir, prun.play.base_dir / kind, prun.play.base_dir]
        seen: list[Path] = []
        for d in dirs:
            if d not in seen:
                seen.append(d)
        return seen

    def _find_file(self, task: Task, prun: PlayRun, kind: str, name: str) -> Path:
        from clusterctl.provision.modules.context import ModuleArgError

        p = Path(os.path.expanduser(str(name)))
        if p.is_absolute():
            if p.exists():
                return p
            raise ModuleArgError(f"could not find {kind.rstrip('s')} {name!r}")
        dirs = self._search_dirs(task, prun, kind)
        for d in dirs:
            if (d / p).exists():
                return d / p
        raise ModuleArgError(f"could not find {kind.rstrip('s')} {name!r} (looked in {', '.join(str(d) for d in dirs)})")

    # -- handlers, includes, meta, pause, facts

    async def _flush_handlers(self, prun: PlayRun, hosts: list[HostState]) -> None:
        """Run notified handlers in definition order; a notification reaches every handler named
        by it or listening to it. Handlers notified by handlers run in a following round."""
        handlers = prun.play.handlers
        for _round in range(10):
            pending = {hs.name: set(hs.notified) for hs in hosts if hs.notified}
            if not pending:
                return
            for hs in hosts:
                hs.notified = []
            for h in handlers:
                names = {str(h.name)} if h.name else set()
                if h.name and h.inh.role is not None:
                    names.add(f"{h.inh.role.name} : {h.name}")
                names.update(h.listen)
                eligible = [hs for hs in hosts if names & pending.get(hs.name, set())
                            and (hs.active or (prun.play.force_handlers and hs.failed and not hs.unreachable))]
                if not eligible:
                    continue
                if prun.play.force_handlers:
                    for hs in eligible:
                        hs.failed = False
                await self._run_task(h, eligible, prun, rescuable=False, handler=True)
                if prun.stop:
                    return

    async def _run_meta(self, task: Task, hosts: list[HostState], prun: PlayRun) -> None:
        action = task.args.get("_raw_params")
        if action == "flush_handlers":
            await self._flush_handlers(prun, hosts)
            return
        if action in ("noop", "refresh_inventory", "reset_connection", "end_role"):
            return
        chosen = []
        for hs in hosts:
            templar = self._templar(self._task_vars(task, hs.name, prun))
            if self._when(task, templar):
                chosen.append(hs)
        if not chosen:
            return
        if action == "end_host":
            for hs in chosen:
                hs.ended = True
                self.out.message(f"meta: end_host for [{hs.name}]")
        elif action in ("end_play", "end_batch"):
            for hs in prun.batch:
                hs.ended = True
            self.out.message("meta: end_play")
            prun.stop = True
            if action == "end_play":
                prun.break_playbook = False
                raise _EndPlay()
        elif action == "clear_facts":
            for hs in chosen:
                if hasattr(self.vm, "clear_facts"):
                    self.vm.clear_facts(hs.name)
        elif action == "clear_host_errors":
            for hs in self.hosts.values():
                if hs.failed and not hs.unreachable:
                    hs.failed = False

    async def _run_include(self, task: Task, hosts: list[HostState], prun: PlayRun, *, rescuable: bool) -> None:
        """``include_tasks``: per host (and per loop item) decide the file, then run it for that group."""
        groups: dict[tuple, list] = {}
        order: list[tuple] = []
        item_labels: dict[tuple, Any] = {}
        self.out.task_start(task.display_name, len(hosts), task_id=id(task) if prun.play.strategy == "free" else None,
                            where=task.where)
        for hs in hosts:
            variables = self._task_vars(task, hs.name, prun)
            templar = self._templar(variables)
            try:
                items = self._loop_items(task, templar)
                per_item = [(None, variables, templar)] if items is None else []
                if items is not None:
                    lc = task.kw.get("loop_control") or {}
                    loop_var = str(lc.get("loop_var", "item"))
                    for it in items:
                        iv = dict(variables)
                        iv[loop_var] = it
                        per_item.append(((loop_var, it), iv, self._templar(iv)))
                for key_item, iv, t in per_item:
                    if not self._when(task, t):
                        continue
                    args = t.render(task.args)
                    target = str(args.get("file") or args.get("_raw_params"))
                    params = {k: v for k, v in args.items() if k not in ("file", "_raw_params", "apply")}
                    if key_item is not None:
                        params[key_item[0]] = key_item[1]
                    key = (target, repr(key_item), repr(sorted(params.items(), key=lambda kv: str(kv[0]))))
                    if key not in groups:
                        groups[key] = []
                        order.append(key)
                        if key_item is not None:
                            item_labels[key] = key_item[1]
                    groups[key].append((hs, params))
            except ClusterctlError as exc:
                outcome = self._conclude(task, hs, prun, {"failed": True, "changed": False, "msg": f"{task.where}: {exc}"}, rescuable)
                self._record(outcome, task, 0.0, False)
        included = {hs.name for key in order for hs, _ in groups[key]}
        for hs in hosts:
            if hs.active and hs.name not in included:
                self._record(TaskOutcome(hs, "skipped", _skip_result(task)), task, 0.0, False)
        resolved: list[tuple[tuple, Path, list]] = []
        for key in order:
            members = groups[key]
            try:
                path, items = self._include_blocks(task, key[0], members[0][1])
            except ClusterctlError as exc:
                for hs, _ in members:
                    outcome = self._conclude(task, hs, prun, {"failed": True, "changed": False, "msg": str(exc)}, rescuable)
                    self._record(outcome, task, 0.0, False)
                continue
            self.out.included(str(path), [hs.name for hs, _ in members], item=item_labels.get(key))
            resolved.append((key, path, items))
        for key, _path, _items in resolved:
            for hs, _ in groups[key]:
                self.out.host_stats(hs.name).ok += 1  # as Ansible: one ok per host and included file (per item)
        self.out.task_end(task.display_name)
        for key, _path, items in resolved:
            await self._run_items(items, [hs for hs, _ in groups[key]], prun, rescuable=rescuable)

    def _include_blocks(self, task: Task, target: str, params: dict) -> list:
        from dataclasses import replace

        base = task.inh.role.tasks_dir if task.inh.role is not None else task.inh.base_dir
        path = Path(target) if os.path.isabs(target) else base / target
        if not path.is_file() and task.inh.role is None:
            raise PlaybookError(f"{task.where}: include_tasks: {path} not found")
        if not path.is_file():
            alt = task.inh.base_dir / target
            if not alt.is_file():
                raise PlaybookError(f"{task.where}: include_tasks: {path} not found")
            path = alt
        inh: Inherited = replace(task.inh, when=(), notify=(), include_params={**task.inh.include_params, **params},
                                 vars={**task.inh.vars, **(task.kw.get("vars") or {})}, base_dir=path.parent if task.inh.role is None else task.inh.base_dir)
        return path.resolve(), parse_task_file(path, inh)

    async def _run_pause(self, task: Task, hosts: list[HostState], prun: PlayRun) -> list[TaskOutcome]:
        """``pause`` waits once for the whole batch (Ansible runs it on the first host only)."""
        hs = hosts[0]
        start = time.monotonic()
        variables = self._task_vars(task, hs.name, prun)
        templar = self._templar(variables)
        if not self._when(task, templar):
            outcome = TaskOutcome(hs, "skipped", _skip_result(task))
        else:
            args = templar.render(task.args)
            seconds = float(args.get("seconds", 0) or 0) + 60 * float(args.get("minutes", 0) or 0)
            if not seconds and "prompt" in args:
                outcome = TaskOutcome(hs, "failed", {"failed": True, "msg": "pause: an interactive prompt needs a TTY; give seconds or minutes"})
                hs.failed = True
            else:
                if prun.play.strategy != "free" and self.out.tty:
                    self.out.message(f"Pausing for {seconds:g} seconds")
                await self.opts.sleep(seconds)
                outcome = TaskOutcome(hs, "ok", {"changed": False, "delta": seconds, "stop": str(time.time()),
                                                 "user_input": "", "echo": True, "rc": 0})
        self._record(outcome, task, time.monotonic() - start, False)
        return [outcome]

    async def _gather_facts(self, prun: PlayRun, hosts: list[HostState]) -> None:
        targets = [hs for hs in hosts if hs.active and not hs.facts_gathered]
        if not targets:
            return
        name = "Gathering Facts"
        self.out.task_start(name, len(targets), task_id=-1 if prun.play.strategy == "free" else None)

        async def one(hs: HostState) -> TaskOutcome:
            async with self._forks:
                start = time.monotonic()
                try:
                    facts = await self._facts_for(hs.name)
                    hs.facts_gathered = True
                    outcome = TaskOutcome(hs, "ok", {"changed": False, "ansible_facts": facts})
                except HostUnreachable as exc:
                    hs.unreachable = True
                    outcome = TaskOutcome(hs, "unreachable", {"unreachable": True, "changed": False, "msg": exc.reason})
                except asyncio.CancelledError:
                    raise
                except ClusterctlError as exc:
                    hs.failed = True
                    outcome = TaskOutcome(hs, "failed", {"failed": True, "changed": False, "msg": str(exc)})
                self._record(outcome, name, time.monotonic() - start, False)
                return outcome

        await asyncio.gather(*(one(hs) for hs in targets))
        self.out.task_end(name)

    async def _facts_for(self, host: str) -> dict:
        from clusterctl.provision.facts import gather_facts

        conn = self._local if self._is_local(host) else await self.connection(host)
        facts = await gather_facts(conn)
        self.vm.set_facts(host, facts)
        return facts


# ---------------------------------------------------------------- executor-side modules


async def _debug(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    verbosity = int(args.get("verbosity", 0) or 0)
    if verbosity > ex.opts.verbosity:
        return {"changed": False, "skipped": True, "skipped_reason": "Verbosity threshold not met."}
    if "var" in args:
        name = args["var"]
        raw = task.args.get("var")
        try:
            value = templar.render("{{ " + str(raw) + " }}") if isinstance(raw, str) and "{{" not in raw else name
        except TemplateError:
            value = "VARIABLE IS NOT DEFINED!"
        return {"changed": False, str(raw): value}
    return {"changed": False, "msg": args.get("msg", "Hello world!")}


async def _set_fact(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    facts: dict = {}
    kv_form = isinstance(task.kw.get("set_fact"), str)
    for k, v in args.items():
        if k == "cacheable":
            continue
        if kv_form and isinstance(v, str) and v.lower() in ("true", "false", "yes", "no"):
            v = v.lower() in ("true", "yes")
        facts[k] = v
        ex.vm.set_fact(hs.name, k, v)
    return {"changed": False, "ansible_facts": facts}


async def _assert(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    raw = task.args.get("that")
    conds = _as_list(raw)
    for cond in conds:
        ok = cond if isinstance(cond, bool) else templar.evaluate_condition(cond)
        if not ok:
            msg = args.get("fail_msg", args.get("msg", "Assertion failed"))
            return {"failed": True, "changed": False, "assertion": cond, "evaluated_to": False, "msg": msg}
    return {"changed": False, "failed": False, "msg": args.get("success_msg", "All assertions passed")}


async def _fail(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    return {"failed": True, "changed": False, "msg": args.get("msg", "Failed as requested from task")}


async def _include_vars(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    target = args.get("file") or args.get("_raw_params")
    if not target:
        return {"failed": True, "msg": "include_vars: no file given"}
    dirs: list[Path] = []
    if task.inh.role is not None:
        dirs += [task.inh.role.path / "vars", task.inh.role.path]
    dirs += [task.inh.base_dir / "vars", task.inh.base_dir, prun.play.base_dir / "vars", prun.play.base_dir]
    path = Path(str(target))
    if not path.is_absolute():
        for d in dirs:
            if (d / path).is_file():
                path = d / path
                break
    if not path.is_file():
        return {"failed": True, "changed": False, "msg": f"include_vars: could not find {target!r}"}
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        return {"failed": True, "changed": False, "msg": f"include_vars: {path} is not a mapping"}
    if args.get("name"):
        data = {str(args["name"]): data}
    for k, v in data.items():
        ex.vm.set_fact(hs.name, k, v)
    return {"changed": False, "ansible_facts": dict(data), "ansible_included_var_files": [str(path)]}


async def _setup(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    facts = await ex._facts_for(hs.name)
    hs.facts_gathered = True
    return {"changed": False, "ansible_facts": facts}


async def _ping(ex: PlaybookExecutor, task, hs, prun, args, variables, templar) -> dict:
    conn = ex._local if ex._is_local(hs.name) else await ex.connection(hs.name)
    res = await conn.run("true", timeout=ex.opts.command_timeout)
    if res.rc != 0:
        return {"failed": True, "changed": False, "msg": res.stderr.strip() or f"rc={res.rc}"}
    return {"changed": False, "ping": args.get("data", "pong")}


async def _noop(ex, task, hs, prun, args, variables, templar) -> dict:
    return {"changed": False}


_EXECUTOR_ACTIONS: dict[str, Callable[..., Awaitable[dict]]] = {
    "debug": _debug,
    "set_fact": _set_fact,
    "assert": _assert,
    "fail": _fail,
    "include_vars": _include_vars,
    "setup": _setup,
    "gather_facts": _setup,
    "ping": _ping,
    "noop": _noop,
}


# ---------------------------------------------------------------- small pure helpers


def render_keeping_newlines(templar, value: Any) -> Any:
    """``templar.render`` that keeps a string's trailing newlines, as Ansible's templar does.

    (``content: "hello {{ x }}\\n"`` must write the newline; Jinja2 drops one by default.)
    Adapter until ``templating.Templar`` does this itself.
    """
    if isinstance(value, str):
        out = templar.render(value)
        if isinstance(out, str) and value.endswith("\n") and templar.is_template(value):
            want = len(value) - len(value.rstrip("\n"))
            have = len(out) - len(out.rstrip("\n"))
            if have < want:
                out += "\n" * (want - have)
        return out
    if isinstance(value, dict):
        return {templar.render(k): render_keeping_newlines(templar, v) for k, v in value.items()}
    if isinstance(value, list):
        return [render_keeping_newlines(templar, v) for v in value]
    return templar.render(value)


def _bare(cond: Any) -> str:
    """A ``when``-style condition as an expression: ``'{{ x }}'`` and ``'x'`` both mean ``x``."""
    text = str(cond).strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return text


def _truth(templar, cond: Any) -> bool:
    if isinstance(cond, bool):
        return cond
    if cond is None:
        return False
    return templar.evaluate_condition(cond)


def _skip_result(task: Task) -> dict:
    result = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    for cond in task.when:
        result["false_condition"] = cond
    return result


def _has_loop(task: Task) -> bool:
    return "loop" in task.kw or any(k.startswith("with_") for k in task.kw)


def pct_to_int(value: Any, total: int, minimum: int = 1) -> int:
    """Ansible's serial arithmetic: ``'30%'`` of ``total`` rounded down (at least 1), or an int."""
    if isinstance(value, str) and value.strip().endswith("%"):
        pct = int(float(value.strip()[:-1]))
        return int((pct / 100.0) * total) or minimum
    return int(value)


def _serial_batches(hosts: list, serial: list, render: Callable[[Any], Any]) -> list[list]:
    """Cut play hosts into batches exactly as ``ansible-playbook`` does (scalar, percent or list)."""
    remaining = list(hosts)
    total = len(remaining)
    items = [render(s) for s in serial] or [-1]
    batches: list[list] = []
    cur = 0
    while remaining:
        size = pct_to_int(items[cur], total)
        if size <= 0:
            batches.append(remaining)
            break
        batches.append(remaining[:size])
        remaining = remaining[size:]
        cur = min(cur + 1, len(items) - 1)
    return batches
