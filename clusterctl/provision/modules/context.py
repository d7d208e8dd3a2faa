"""What a module gets to work with (``ModuleContext``) and how it is declared (``ModuleSpec``).

A module is an ``async def run(ctx, args) -> dict`` that closes the gap between the state its
arguments describe and the state it finds on one host, over that host's one ``HostConnection``.
The context carries the per-task switches (check mode, diff, become, environment, timeout,
no_log) and the executor's callbacks for local files (templates, role files, fetch folder), so a
module never reaches back into the executor. ``ctx.run`` is the only way a module runs a command:
it applies become, environment and timeout uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from clusterctl.provision.connection import CommandResult, HostConnection
from clusterctl.provision.errors import PlaybookError


class ModuleArgError(PlaybookError):
    """A task's module name or arguments are wrong (raised before any host is touched)."""


@dataclass
class ModuleContext:
    conn: HostConnection
    host: str
    check_mode: bool = False
    diff: bool = False
    become: bool = False
    become_user: str = "root"
    environment: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    no_log: bool = False
    render_template: Callable[[Path], str] | None = None
    find_file: Callable[[str, str], Path] | None = None
    fetch_root: Path | None = None

    async def run(self, cmd: str, **kw) -> CommandResult:
        """Run ``cmd`` under ``sh -c`` with this task's become, environment and timeout."""
        env = dict(self.environment)
        env.update(kw.pop("env", None) or {})
        kw.setdefault("timeout", self.timeout)
        kw.setdefault("become", self.become)
        kw.setdefault("become_user", self.become_user)
        return await self.conn.run(cmd, env=env or None, **kw)

    @property
    def writes_as_login_user(self) -> bool:
        """True when SFTP (which runs as the login user) writes files as the task's user."""
        if not self.become:
            return True
        return self.conn.spec.user == self.become_user

    def local_file(self, kind: str, rel_path: str) -> Path:
        """Resolve a task's local ``src`` (role ``files``/``templates`` then playbook dir)."""
        if self.find_file is not None:
            return self.find_file(kind, rel_path)
        path = Path(rel_path).expanduser()
        if not path.exists():
            raise ModuleArgError(f"could not find {kind[:-1]} {rel_path!r}")
        return path


ModuleRun = Callable[[ModuleContext, dict], Awaitable[dict]]


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    run: ModuleRun
    required: frozenset[str] = frozenset()
    validate: Callable[[dict], None] | None = None
    free_form: bool = False
    aliases: tuple[str, ...] = ()

    def check_args(self, args: dict) -> None:
        """Fail early (before any host) on missing required args or a failed ``validate``."""
        missing = sorted(a for a in self.required if args.get(a) is None)
        if missing:
            raise ModuleArgError(f"{self.name}: missing required arguments: {', '.join(missing)}")
        if self.validate is not None:
            self.validate(args)
