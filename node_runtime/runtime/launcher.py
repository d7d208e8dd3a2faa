"""The container launcher: runs inside a container's fresh namespaces and execs the workload.

The fallback for machines without a C compiler: by default ``shim/ccl-shim.c`` does all of this
in C (same steps, same exit codes; keep the two in step). Started by the process runtime as
``unshare --pid --fork --kill-child --mount --uts --ipc --propagation private python -S -I launcher.py SPEC``
so it is PID 1 of a new PID namespace with a private mount namespace. It then, in order:
joins the container's cgroups, enters the pod's network namespace, mounts the overlay rootfs,
/proc, /dev, /dev/pts, /dev/shm, read-only /sys and the volumes, pivot_roots into the rootfs,
masks sensitive /proc paths, sets the hostname, drops capabilities outside the default set,
sets no_new_privs, switches user, and execs the command (which becomes PID 1).

It imports only the standard library and runs with ``-S -I`` to keep container start fast; the
runtime runs it from a precompiled ``.pyc`` and passes the spec marshalled in a memfd (``fd:N``).
Exit codes follow runc/docker: 125 setup failed, 126 not executable, 127 command not found.
"""

import ctypes
import marshal
import os
import sys

try:
    # not ctypes.util.find_library: it runs ``ldconfig -p`` in a subprocess, ~25 ms per container
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - a libc with another soname (musl)
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 24, 47, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)

CAPS = ["chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
        "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
        "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
        "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
        "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
        "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore"]
# containerd/docker's default set
DEFAULT_CAPS = {"chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid",
                "setfcap", "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write"}
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEVICES = ["null", "zero", "full", "random", "urandom", "tty"]


class SetupError(Exception):
    pass


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags=0, data=None):
    _check(libc.mount(source.encode() if source else None, target.encode(),
                      fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                      data.encode() if data else None), f"mount {fstype or 'bind'} {source} on {target}")


def bind(source, target, readonly=False, recursive=True):
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | (MS_REC if recursive else 0))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


SYS_OPENAT2 = 437                     # the same number on every architecture
RESOLVE_NO_MAGICLINKS, RESOLVE_IN_ROOT = 0x02, 0x10


class Root:
    """The container's root, with every path in it resolved as if it were "/" (openat2
    RESOLVE_IN_ROOT), as ccl-shim does: an image's symlink (/data -> /etc) cannot make setup
    create, mount or link anything outside it. Mounts go onto /proc/self/fd/N of the resolved
    descriptor."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def open(self, path, flags=os.O_PATH):
        how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        rel = path.strip("/").encode() or b"."
        fd = libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(self.fd), ctypes.c_char_p(rel),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd

    def point(self, path, is_file, depth=0):
        """An O_PATH descriptor of ``path`` inside the root, made (with its parents) if missing:
        each component is created in its already-resolved parent, and a dangling symlink on the
        way is followed by its text, inside the root (as runc's MkdirAll does)."""
        parts = [p for p in path.split("/") if p]
        try:
            return self.open(path)
        except OSError as exc:
            if exc.errno != 2:
                raise SetupError(f"resolve {path} in the container's root: {exc.strerror}") from None
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            try:
                os.close(self.open(sub))
                continue
            except OSError as exc:
                if exc.errno != 2:
                    raise SetupError(f"resolve /{sub} in the container's root: {exc.strerror}") from None
            parent = self.open("/".join(parts[:i - 1]), os.O_PATH | os.O_DIRECTORY)
            try:
                try:
                    link = os.readlink(parts[i - 1], dir_fd=parent)
                except OSError:
                    link = None
                if link is not None:                                  # a dangling symlink
                    if depth >= 40:
                        raise SetupError(f"resolve {path} in the container's root: too many levels of symbolic links")
                    base = [] if link.startswith("/") else parts[:i - 1]
                    return self.point("/".join(base + [link] + parts[i:]), is_file, depth + 1)
                if i == len(parts) and is_file:
                    try:
                        os.close(os.open(parts[i - 1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         0o644, dir_fd=parent))
                    except FileExistsError:
                        pass
                else:
                    try:
                        os.mkdir(parts[i - 1], 0o755, dir_fd=parent)
                    except FileExistsError:
                        pass
            finally:
                os.close(parent)
        try:
            return self.open(path)
        except OSError as exc:
            raise SetupError(f"resolve {path} in the container's root: {exc.strerror}") from None

    def mount(self, path, is_file, source, fstype, flags=0, data=None):
        fd = self.point(path, is_file)
        try:
            mount(source, f"/proc/self/fd/{fd}", fstype, flags, data)
        except SetupError as exc:
            raise SetupError(f"{exc} ({path} in the container)") from None
        finally:
            os.close(fd)

    def remount(self, path, flags):
        """Resolved again: the descriptor ``point`` gave is the directory under the new mount."""
        fd = self.open(path)
        try:
            mount(None, f"/proc/self/fd/{fd}", None, flags)
        except SetupError as exc:
            raise SetupError(f"{exc} ({path} in the container)") from None
        finally:
            os.close(fd)

    def bind(self, source, path, is_file, readonly=False, recursive=True):
        self.mount(path, is_file, source, None, MS_BIND | (MS_REC if recursive else 0))
        if readonly:
            self.remount(path, MS_BIND | MS_REMOUNT | MS_RDONLY | (MS_REC if recursive else 0))

    def symlink(self, target, directory, name):
        fd = self.open(directory, os.O_PATH | os.O_DIRECTORY)
        try:
            os.symlink(target, name, dir_fd=fd)
        finally:
            os.close(fd)

    def close(self):
        os.close(self.fd)


def setup_rootfs(spec):
    rootfs = spec["rootfs"]
    merged = rootfs["merged"]
    os.makedirs(merged, exist_ok=True)
    if rootfs.get("lower"):
        opts = "lowerdir=" + ":".join(rootfs["lower"])
        if rootfs.get("upper"):
            os.makedirs(rootfs["upper"], exist_ok=True)
            os.makedirs(rootfs["work"], exist_ok=True)
            opts += f",upperdir={rootfs['upper']},workdir={rootfs['work']}"
        mount("overlay", merged, "overlay", 0, opts)
    else:
        bind(merged, merged)
    root = Root(merged)
    root.mount("/proc", False, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    root.mount("/dev", False, "tmpfs", "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for d in DEVICES:
        root.bind(f"/dev/{d}", f"/dev/{d}", True, recursive=False)
    try:
        root.mount("/dev/pts", False, "devpts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
        root.symlink("pts/ptmx", "/dev", "ptmx")
    except (SetupError, OSError):
        pass
    root.mount("/dev/shm", False, "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        root.symlink(target, "/dev", name)
    try:
        root.mount("/sys", False, "sysfs", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SetupError:
        root.bind("/sys", "/sys", False, readonly=True)
    for m in spec.get("mounts", []):
        target = m["target"]
        if m.get("type") == "tmpfs":
            root.mount(target, False, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, m.get("options") or "mode=755")
            if m.get("readonly"):
                root.remount(target, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        else:
            root.bind(m["source"], target, os.path.isfile(m["source"]), readonly=bool(m.get("readonly")))
    root.close()
    return merged


def pivot(merged):
    os.chdir(merged)
    os.makedirs(".oldroot", exist_ok=True)
    _check(libc.syscall(SYS_PIVOT_ROOT, b".", b".oldroot"), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.oldroot", MNT_DETACH), "umount old root")
    os.rmdir("/.oldroot")


def mask_paths():
    for p in MASKED:
        if not os.path.exists(p):
            continue
        if os.path.isdir(p):
            mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0")
        else:
            bind("/dev/null", p, recursive=False)
    for p in READONLY:
        if os.path.exists(p):
            try:
                bind(p, p, readonly=True)
            except SetupError:
                pass


def drop_caps(keep):
    for i, name in enumerate(CAPS):
        if name not in keep:
            libc.prctl(PR_CAPBSET_DROP, i, 0, 0, 0)  # EINVAL for caps this kernel lacks: fine
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def resolve(cmd, env):
    if "/" in cmd:
        return cmd
    for d in env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        cand = os.path.join(d, cmd)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def main():
    source = sys.argv[1]
    if source.startswith("fd:"):  # a memfd from the runtime: nothing of the spec touches a disk
        fd = int(source[3:])
        with os.fdopen(fd, "rb") as f:
            spec = marshal.loads(f.read())  # marshal: built in, no import cost (json costs ~9 ms)
    else:
        with open(source) as f:
            import json
            spec = json.load(f)
    try:
        for procs in spec.get("cgroup_procs", []):
            with open(procs, "w") as f:
                f.write("0")
        if spec.get("netns"):
            fd = os.open(spec["netns"], os.O_RDONLY)
            _check(libc.setns(fd, CLONE_NEWNET), f"setns {spec['netns']}")
            os.close(fd)
        merged = setup_rootfs(spec)
        pivot(merged)
        mask_paths()
        if spec.get("hostname"):
            name = spec["hostname"].encode()
            _check(libc.sethostname(name, len(name)), "sethostname")
        drop_caps(set(spec.get("capabilities", DEFAULT_CAPS)))
        if spec.get("no_new_privs", True):
            _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        env = dict(spec.get("env", {}))
        try:
            os.chdir(spec.get("cwd") or "/")
        except OSError as exc:
            raise SetupError(f"working directory {spec.get('cwd')!r}: {exc.strerror}")
        gid, uid = spec.get("gid"), spec.get("uid")
        if gid is not None or uid is not None:
            os.setgroups(spec.get("groups", []))
            os.setgid(gid if gid is not None else (uid or 0))
        if uid is not None:
            os.setuid(uid)
    except (SetupError, OSError) as exc:
        sys.stderr.write(f"container setup failed: {exc}\n")
        os._exit(125)
    argv = spec["argv"]
    path = resolve(argv[0], env)
    if path is None:
        sys.stderr.write(f'exec: "{argv[0]}": executable file not found in $PATH\n')
        os._exit(127)
    started = spec.get("started_fd")
    if started is not None:
        # tell the runtime the container is set up and the workload is being exec'd; the fd
        # must not leak into the workload
        try:
            os.set_inheritable(started, False)
            os.write(started, b"1")
            os.close(started)
        except OSError:
            pass
    try:
        os.execve(path, argv, env)
    except OSError as exc:
        sys.stderr.write(f'exec: "{argv[0]}": {exc.strerror}\n')
        os._exit(126 if exc.errno in (13, 8) else 127)


if __name__ == "__main__":
    main()
