"""One persistent SSH connection per host: run POSIX shell, move files over SFTP.

This is the provisioner's only way to touch a host. A ``HostConnection`` is opened once per host
for a whole run; every module runs as ``sh -c`` commands over it and files travel over one SFTP
session on the same connection, so a task costs one round-trip, not a new handshake or a module
upload (why we can be much faster than Ansible). Host keys are verified against known_hosts;
``accept_new`` trusts and records an unknown key (never a *changed* one).

Every failure of the transport (connect, auth, host key, connection lost) becomes
``HostUnreachable``; a command that runs but fails is a normal ``CommandResult`` with ``rc != 0``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from clusterctl.provision.errors import CommandTimeout, HostUnreachable, ProvisionError


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass
class ConnectionSpec:
    """Where and how to reach one host (from the inventory's ``ansible_*`` variables)."""

    name: str
    host: str
    port: int = 22
    user: str = "root"
    private_key: str | None = None
    known_hosts: str | None = None  # path; None = ~/.ssh/known_hosts
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    password: str | None = None
    extra: dict = field(default_factory=dict)


# Parsed known_hosts files by (path, mtime, size): a 100-host run opens 100 connections against
# the same file, and parsing it for each is quadratic in the number of hosts.
_KNOWN_HOSTS_CACHE: dict[str, tuple[tuple[float, int], object]] = {}

# AES-GCM first: asyncssh's chacha20-poly1305 builds a cipher context per packet, which was about
# a fifth of the controller's CPU in a 100-host run; GCM uses the AES-NI path of `cryptography`.
ENCRYPTION_ALGS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                   "aes128-ctr", "aes256-ctr")


def _load_known_hosts(path: str | None):
    path = path or os.path.expanduser("~/.ssh/known_hosts")
    try:
        st = os.stat(path)
    except OSError:
        return None, path
    stamp = (st.st_mtime, st.st_size)
    cached = _KNOWN_HOSTS_CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1], path
    parsed = asyncssh.read_known_hosts(path)
    _KNOWN_HOSTS_CACHE[path] = (stamp, parsed)
    return parsed, path


def _host_key_lookup_names(spec: ConnectionSpec) -> list[str]:
    if spec.port == 22:
        return [spec.host]
    return [f"[{spec.host}]:{spec.port}"]


class _AcceptNewClient(asyncssh.SSHClient):
    """Records the server's key so an unknown host can be trusted on first use."""

    def __init__(self) -> None:
        self.server_key: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host, addr, port, key) -> bool:  # noqa: D401
        self.server_key = key
        return True


class HostConnection:
    """An open connection to one host. Create with ``await HostConnection.open(spec)``."""

    def __init__(self, spec: ConnectionSpec, conn: asyncssh.SSHClientConnection):
        self.spec = spec
        self._conn = conn
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_lock = asyncio.Lock()

    @classmethod
    async def open(cls, spec: ConnectionSpec) -> "HostConnection":
        known_hosts, kh_path = _load_known_hosts(spec.known_hosts)
        options = dict(
            host=spec.host,
            port=spec.port,
            username=spec.user,
            client_keys=[spec.private_key] if spec.private_key else None,
            password=spec.password,
            connect_timeout=spec.connect_timeout,
            keepalive_interval=15,
            agent_path=None,
            encryption_algs=[a for a in ENCRYPTION_ALGS if a in _supported_ciphers()],
            compression_algs=None,
        )
        client_factory = None
        if spec.accept_new_host_keys:
            trusted = known_hosts is not None and _known(known_hosts, spec)
            if not trusted:
                options["known_hosts"] = None
                client_factory = _AcceptNewClient
            else:
                options["known_hosts"] = known_hosts
        else:
            if known_hosts is None:
                raise HostUnreachable(spec.name, f"no known_hosts file at {kh_path} (use --accept-new-host-keys to trust on first use)")
            options["known_hosts"] = known_hosts
        try:
            if client_factory is not None:
                # known_hosts=None makes asyncssh skip validation (and never call the client's
                # validate hook), so the key to record is asked from the connection itself
                conn, client = await asyncssh.create_connection(client_factory, **options)
                key = client.server_key or conn.get_server_host_key()
                if key is not None:
                    _record_host_key(kh_path, spec, key)
            else:
                conn = await asyncssh.connect(**options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostUnreachable(spec.name, f"host key of {spec.host}:{spec.port} not verified against {kh_path}: {exc}") from exc
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(spec.name, f"permission denied for {spec.user}@{spec.host}:{spec.port}") from exc
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            raise HostUnreachable(spec.name, f"cannot connect to {spec.host}:{spec.port}: {exc or type(exc).__name__}") from exc
        return cls(spec, conn)

    async def run(
        self,
        command: str,
        *,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        become: bool = False,
        become_user: str = "root",
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run ``command`` (a POSIX shell string) under ``sh -c`` on the host."""
        script = command
        if env:
            exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
            script = f"export {exports}; {script}"
        if cwd:
            script = f"cd {shlex.quote(cwd)} && {script}"
        full = f"sh -c {shlex.quote(script)}"
        if become and not (self.spec.user == "root" and become_user == "root"):
            full = f"sudo -n -H -u {shlex.quote(become_user)} -- {full}"
        if isinstance(stdin, str):  # the channel is binary (encoding=None): send text as UTF-8
            stdin = stdin.encode()
        # asyncssh sends EOF only after non-empty input: without this a command reading stdin
        # (``cat``, ``read``) would wait forever; give it an empty, closed stdin instead
        feed = {"input": stdin} if stdin else {"stdin": asyncssh.DEVNULL}
        try:
            async with asyncio.timeout(timeout):  # not wait_for: Python 3.11's can swallow a cancel
                proc = await self._conn.run(full, check=False, encoding=None, **feed)
        except TimeoutError as exc:
            raise CommandTimeout(f"{self.spec.name}: command timed out after {timeout}s: {command[:120]}") from exc
        except (OSError, asyncssh.Error) as exc:
            raise HostUnreachable(self.spec.name, f"connection lost: {exc}") from exc
        if proc.exit_status is None and not proc.exit_signal:
            # the channel closed without an exit status: sshd (or the whole host) went away
            raise HostUnreachable(self.spec.name, f"connection lost while running: {command[:120]}")
        rc = proc.exit_status if proc.exit_status is not None else 255
        if proc.exit_signal:
            rc = 128 + _signal_number(proc.exit_signal[0])
        return CommandResult(rc, _text(proc.stdout), _text(proc.stderr))

    @property
    def ssh(self) -> asyncssh.SSHClientConnection:
        """The underlying asyncssh connection (for long-lived shell sessions)."""
        return self._conn

    async def sftp(self) -> asyncssh.SFTPClient:
        """The connection's one SFTP session, started on first use."""
        return await self._sftp_client()

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        async with self._sftp_lock:
            if self._sftp is None:
                try:
                    self._sftp = await self._conn.start_sftp_client()
                except (OSError, asyncssh.Error) as exc:
                    raise HostUnreachable(self.spec.name, f"cannot start SFTP: {exc}") from exc
            return self._sftp

    async def put(self, data: bytes, remote_path: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``remote_path`` atomically (temp file in the same folder + rename).

        The temp file is created 0600 and gets ``mode`` (default 0644) just before the rename."""
        sftp = await self._sftp_client()
        tmp = f"{remote_path}.clusterctl-tmp-{os.getpid()}-{id(data) & 0xFFFF:x}"
        try:
            # private from the first byte: a secret must never sit world-readable in the temp file
            async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as f:
                await f.write(data)
            await sftp.chmod(tmp, mode if mode is not None else 0o644)  # 0644: what umask 022 gives
            await sftp.posix_rename(tmp, remote_path)
        except (OSError, asyncssh.Error) as exc:
            try:
                await sftp.remove(tmp)
            except (OSError, asyncssh.Error):
                pass
            raise _sftp_error(self.spec.name, "write", remote_path, exc) from exc

    async def put_file(self, local_path: str | Path, remote_path: str, *, mode: int | None = None) -> None:
        await self.put(Path(local_path).read_bytes(), remote_path, mode=mode)

    async def get(self, remote_path: str) -> bytes:
        sftp = await self._sftp_client()
        try:
            async with sftp.open(remote_path, "rb") as f:
                return await f.read()
        except (OSError, asyncssh.Error) as exc:
            raise _sftp_error(self.spec.name, "read", remote_path, exc) from exc

    async def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.exit()
            self._conn.close()
            await asyncio.wait_for(self._conn.wait_closed(), timeout=5)
        except (OSError, asyncssh.Error, asyncio.TimeoutError):
            pass


def _supported_ciphers() -> set[str]:
    return {a.decode() for a in asyncssh.encryption.get_encryption_algs()}


def _known(known_hosts, spec: ConnectionSpec) -> bool:
    for name in _host_key_lookup_names(spec):
        trusted, *_ = known_hosts.match(name, spec.host, spec.port)
        if trusted:
            return True
    return False


def _record_host_key(path: str, spec: ConnectionSpec, key: asyncssh.SSHKey) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    line = f"{_host_key_lookup_names(spec)[0]} {key.export_public_key().decode().strip()}\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _signal_number(name: str) -> int:
    import signal

    try:
        return int(getattr(signal, f"SIG{name}" if not name.startswith("SIG") else name))
    except (AttributeError, TypeError, ValueError):
        return 0


class SFTPError(ProvisionError):
    """A file transfer failed on a reachable host (permission, missing folder, full disk)."""


def _sftp_error(host: str, verb: str, path: str, exc: Exception) -> Exception:
    if isinstance(exc, asyncssh.SFTPError):
        return SFTPError(f"{host}: cannot {verb} {path}: {exc.reason}")
    if isinstance(exc, asyncssh.Error) or isinstance(exc, ConnectionError):
        return HostUnreachable(host, f"connection lost during SFTP {verb} of {path}: {exc}")
    return SFTPError(f"{host}: cannot {verb} {path}: {exc}")
