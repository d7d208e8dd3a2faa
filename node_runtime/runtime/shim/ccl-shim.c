/*
 * ccl-shim: the parent process of one container of clusterctl's process runtime.
 *
 * Built by the node agent at start (node_runtime/runtime/shim.py) into its state dir; the agent
 * falls back to util-linux `unshare` + the Python launcher when no C compiler is present.
 *
 *   ccl-shim spec FD            container setup done here, in C, from the spec in memfd FD
 *   ccl-shim exec PROGRAM ARG.. the child execs PROGRAM (the Python launcher) instead
 *
 * What it does, in order: unshare the PID, mount, UTS and IPC namespaces, make every mount
 * private, fork. The child is PID 1 of the new PID namespace: it asks for SIGKILL when the shim
 * dies (PR_SET_PDEATHSIG; a pipe closes the race where the shim died before that), then either
 * execs PROGRAM or builds the container itself (cgroups: made, limited, joined; pod netns, overlay rootfs, /proc, /dev,
 * /sys, volumes, pivot_root, masked paths, hostname, capabilities, no_new_privs, user) and execs
 * the workload. The shim stays as the parent holding no descriptor but stdio, forwards SIGTERM,
 * SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the child, and exits with the child's status
 * exactly: the same exit code, or death by the same signal (re-raised with core dumps off), which
 * util-linux unshare could not always do.
 *
 * Exit codes of setup follow runc/docker: 125 setup failed, 126 not executable, 127 not found.
 * The spec format (written by process.py's `c_spec`) is NUL-terminated strings: a key, then a
 * fixed number of values for that key (see `parse_spec`).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_ITEMS 4096

static const int FORWARDED[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_FORWARDED (sizeof(FORWARDED) / sizeof(FORWARDED[0]))

static volatile pid_t child_pid = 0;

/* --------------------------------------------------------------------- errors */

static void die(int code, const char *fmt, ...) {
    char buf[8600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(2, "%s\n", buf);
    _exit(code);
}

#define SETUP_FAILED(...) do { int _e = errno; char _m[8400]; snprintf(_m, sizeof _m, __VA_ARGS__); \
    die(125, "container setup failed: %s: %s", _m, strerror(_e)); } while (0)

/* --------------------------------------------------------------------- the spec */

struct mount_item { const char *type, *source, *target, *readonly, *options; };

struct spec {
    const char *lower[MAX_ITEMS]; int n_lower;
    const char *upper, *work, *merged, *netns, *hostname, *cwd;
    const char *cgroup_procs[64]; int n_cgroup_procs;
    const char *cgroup_dirs[64]; int n_cgroup_dirs;
    struct { const char *path, *value, *optional; } cgroup_writes[64]; int n_cgroup_writes;
    struct mount_item mounts[512]; int n_mounts;
    char *argv[MAX_ITEMS]; int n_argv;
    char *env[MAX_ITEMS]; int n_env;
    const char *path_env;
    long uid, gid;                      /* -1: not set */
    int started_fd;                     /* -1: none */
};

static char *read_all(int fd, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf) die(125, "container setup failed: out of memory");
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) die(125, "container setup failed: out of memory");
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) SETUP_FAILED("reading the spec");
        if (r == 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static void parse_spec(int fd, struct spec *s) {
    size_t len;
    char *buf = read_all(fd, &len);
    close(fd);
    char *tok[MAX_ITEMS * 4];
    size_t nt = 0, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\0') {
            if (nt == sizeof tok / sizeof tok[0]) die(125, "container setup failed: spec too large");
            tok[nt++] = buf + start;
            start = i + 1;
        }
    }
    memset(s, 0, sizeof *s);
    s->uid = s->gid = -1;
    s->started_fd = -1;
#define NEED(k) do { if (i + (k) >= nt) die(125, "container setup failed: truncated spec at %s", key); } while (0)
    for (size_t i = 0; i < nt; i++) {
        const char *key = tok[i];
        if (!strcmp(key, "lower")) { NEED(1); if (s->n_lower < MAX_ITEMS) s->lower[s->n_lower++] = tok[++i]; }
        else if (!strcmp(key, "upper")) { NEED(1); s->upper = tok[++i]; }
        else if (!strcmp(key, "work")) { NEED(1); s->work = tok[++i]; }
        else if (!strcmp(key, "merged")) { NEED(1); s->merged = tok[++i]; }
        else if (!strcmp(key, "netns")) { NEED(1); s->netns = tok[++i]; }
        else if (!strcmp(key, "hostname")) { NEED(1); s->hostname = tok[++i]; }
        else if (!strcmp(key, "cwd")) { NEED(1); s->cwd = tok[++i]; }
        else if (!strcmp(key, "cgroup_procs")) { NEED(1); if (s->n_cgroup_procs < 64) s->cgroup_procs[s->n_cgroup_procs++] = tok[++i]; }
        else if (!strcmp(key, "cgroup_dir")) { NEED(1); if (s->n_cgroup_dirs < 64) s->cgroup_dirs[s->n_cgroup_dirs++] = tok[++i]; }
        else if (!strcmp(key, "cgroup_write")) {
            NEED(3);
            if (s->n_cgroup_writes < 64) {
                s->cgroup_writes[s->n_cgroup_writes].path = tok[i + 1];
                s->cgroup_writes[s->n_cgroup_writes].value = tok[i + 2];
                s->cgroup_writes[s->n_cgroup_writes++].optional = tok[i + 3];
            }
            i += 3;
        }
        else if (!strcmp(key, "arg")) { NEED(1); if (s->n_argv < MAX_ITEMS - 1) s->argv[s->n_argv++] = tok[++i]; }
        else if (!strcmp(key, "env")) {
            NEED(1);
            char *kv = tok[++i];
            if (!strncmp(kv, "PATH=", 5)) s->path_env = kv + 5;
            if (s->n_env < MAX_ITEMS - 1) s->env[s->n_env++] = kv;
        }
        else if (!strcmp(key, "uid")) { NEED(1); s->uid = atol(tok[++i]); }
        else if (!strcmp(key, "gid")) { NEED(1); s->gid = atol(tok[++i]); }
        else if (!strcmp(key, "started_fd")) { NEED(1); s->started_fd = atoi(tok[++i]); }
        else if (!strcmp(key, "mount")) {
            NEED(5);
            if (s->n_mounts < 512) {
                struct mount_item *m = &s->mounts[s->n_mounts++];
                m->type = tok[i + 1]; m->source = tok[i + 2]; m->target = tok[i + 3];
                m->readonly = tok[i + 4]; m->options = tok[i + 5];
            }
            i += 5;
        }
        else die(125, "container setup failed: unknown spec key %s", key);
    }
#undef NEED
    if (!s->merged) die(125, "container setup failed: spec has no rootfs");
    if (s->n_argv == 0) die(125, "container setup failed: spec has no command");
}

/* --------------------------------------------------------------------- filesystem helpers */

static void do_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
    if (mount(source, target, fstype, flags, data) != 0)
        SETUP_FAILED("mount %s %s on %s", fstype ? fstype : "bind", source ? source : "None", target);
}

static void bind(const char *source, const char *target, int readonly, int recursive) {
    do_mount(source, target, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL);
    if (readonly)
        do_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (recursive ? MS_REC : 0), NULL);
}

static void mkdir_p(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) { errno = ENAMETOOLONG; SETUP_FAILED("mkdir %s", path); }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) SETUP_FAILED("mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) SETUP_FAILED("mkdir %s", buf);
}

/* Paths inside the container's root are resolved as if the root were "/" (openat2 with
   RESOLVE_IN_ROOT, kernel 5.6+), never by a path string on the host: an image's symlink
   (/data -> /etc, /dev -> ../../..) cannot make setup create, mount or link anything outside the
   root. Mounts go onto "/proc/self/fd/N" of the resolved descriptor, as runc does. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct ccl_open_how { unsigned long long flags, mode, resolve; };
#define CCL_RESOLVE_NO_MAGICLINKS 0x02ULL
#define CCL_RESOLVE_IN_ROOT 0x10ULL

static int root_fd = -1;

static int open_in_root(const char *rel, int flags) {
    struct ccl_open_how how = {(unsigned long long)(flags | O_CLOEXEC), 0,
                               CCL_RESOLVE_IN_ROOT | CCL_RESOLVE_NO_MAGICLINKS};
    while (*rel == '/') rel++;
    return (int)syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof how);
}

/* PATH (a directory, or an empty regular file when IS_FILE) inside the root, made with its
   missing parents; each component is created in its already-resolved parent, and a dangling
   symlink on the way is followed by its text, inside the root (as runc's MkdirAll does). Returns
   an O_PATH descriptor of it and writes its /proc/self/fd name into FDPATH. */
static int point_in_root_at(const char *path, int is_file, char *fdpath, size_t size, int depth) {
    char rel[PATH_MAX];
    const char *p = path;
    while (*p == '/') p++;
    if (snprintf(rel, sizeof rel, "%s", p) >= (int)sizeof rel) { errno = ENAMETOOLONG; SETUP_FAILED("path %s", path); }
    size_t n = strlen(rel);
    while (n > 0 && rel[n - 1] == '/') rel[--n] = '\0';
    int fd = open_in_root(rel, O_PATH);
    if (fd < 0 && errno == ENOSYS) SETUP_FAILED("openat2 (needs Linux 5.6+) for %s", path);
    if (fd < 0 && errno != ENOENT) SETUP_FAILED("resolve %s in the container's root", path);
    for (size_t end = 0; fd < 0 && end <= n; end++) {
        if (end < n && rel[end] != '/') continue;
        char saved = rel[end];
        rel[end] = '\0';
        int sub = open_in_root(rel, O_PATH);
        if (sub < 0) {
            if (errno != ENOENT) SETUP_FAILED("resolve %s in the container's root", rel);
            char *slash = strrchr(rel, '/');
            const char *name = slash ? slash + 1 : rel;
            if (slash) *slash = '\0';
            int parent = open_in_root(slash ? rel : "", O_PATH | O_DIRECTORY);
            if (parent < 0) SETUP_FAILED("resolve %s in the container's root", slash ? rel : "/");
            char link[PATH_MAX];
            ssize_t len = readlinkat(parent, name, link, sizeof link - 1);
            if (len >= 0) {                                       /* a dangling symlink */
                char next[PATH_MAX];
                const char *rest = end < n ? rel + end + 1 : "";
                link[len] = '\0';
                if (depth >= 40) { errno = ELOOP; SETUP_FAILED("resolve %s in the container's root", path); }
                if (snprintf(next, sizeof next, "%s/%s/%s", link[0] == '/' || !slash ? "" : rel, link, rest) >= (int)sizeof next) {
                    errno = ENAMETOOLONG; SETUP_FAILED("path %s", path);
                }
                close(parent);
                return point_in_root_at(next, is_file, fdpath, size, depth + 1);
            }
            if (end == n && is_file) {
                int f = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (f < 0 && errno != EEXIST) SETUP_FAILED("create %s", path);
                if (f >= 0) close(f);
            } else if (mkdirat(parent, name, 0755) != 0 && errno != EEXIST) {
                SETUP_FAILED("mkdir %s", path);
            }
            close(parent);
            if (slash) *slash = '/';
            sub = open_in_root(rel, O_PATH);
            if (sub < 0) SETUP_FAILED("resolve %s in the container's root", rel);
        }
        rel[end] = saved;
        if (end == n) fd = sub; else close(sub);
    }
    snprintf(fdpath, size, "/proc/self/fd/%d", fd);
    return fd;
}

static int point_in_root(const char *path, int is_file, char *fdpath, size_t size) {
    return point_in_root_at(path, is_file, fdpath, size, 0);
}

/* Mount onto PATH inside the root (made first, as point_in_root does). */
static void mount_in_root(const char *path, int is_file, const char *source, const char *fstype,
                          unsigned long flags, const char *data) {
    char fdpath[64];
    int fd = point_in_root(path, is_file, fdpath, sizeof fdpath);
    if (mount(source, fdpath, fstype, flags, data) != 0)
        SETUP_FAILED("mount %s %s on %s", fstype ? fstype : "bind", source ? source : "None", path);
    close(fd);
}

/* Remount what is now mounted on PATH: resolved again, so the descriptor is the new mount's root
   (the one point_in_root returned is the directory underneath it). */
static void remount_in_root(const char *path, unsigned long flags) {
    char fdpath[64];
    int fd = open_in_root(path, O_PATH);
    if (fd < 0) SETUP_FAILED("resolve %s in the container's root", path);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    if (mount(NULL, fdpath, NULL, flags, NULL) != 0) SETUP_FAILED("remount %s", path);
    close(fd);
}

static void bind_in_root(const char *source, const char *path, int is_file, int readonly, int recursive) {
    mount_in_root(path, is_file, source, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL);
    if (readonly) remount_in_root(path, MS_BIND | MS_REMOUNT | MS_RDONLY | (recursive ? MS_REC : 0));
}

static void link_in_root(const char *target, const char *dir, const char *name) {
    int d = open_in_root(dir, O_PATH | O_DIRECTORY);
    if (d < 0 || symlinkat(target, d, name) != 0) SETUP_FAILED("symlink %s/%s", dir, name);
    close(d);
}

static int is_regular(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path, int *exists) {
    struct stat st;
    *exists = stat(path, &st) == 0;
    return *exists && S_ISDIR(st.st_mode);
}

/* --------------------------------------------------------------------- container setup */

static const char *DEVICES[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const char *MASKED[] = {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                               "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"};
static const char *READONLY[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
/* containerd/docker's default set: chown dac_override fowner fsetid kill setgid setuid setpcap
   net_bind_service net_raw sys_chroot mknod audit_write setfcap */
static const int DEFAULT_CAPS[] = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31};

static void setup_rootfs(const struct spec *s) {
    char p[PATH_MAX], q[PATH_MAX];
    const char *merged = s->merged;
    int fd;
    mkdir_p(merged);
    if (s->n_lower > 0) {
        size_t cap = 256 + strlen(merged);
        for (int i = 0; i < s->n_lower; i++) cap += strlen(s->lower[i]) + 1;
        if (s->upper) cap += strlen(s->upper) + strlen(s->work);
        char *opts = malloc(cap);
        size_t n = (size_t)snprintf(opts, cap, "lowerdir=");
        for (int i = 0; i < s->n_lower; i++)
            n += (size_t)snprintf(opts + n, cap - n, "%s%s", i ? ":" : "", s->lower[i]);
        if (s->upper) {
            mkdir_p(s->upper);
            mkdir_p(s->work);
            snprintf(opts + n, cap - n, ",upperdir=%s,workdir=%s", s->upper, s->work);
        }
        do_mount("overlay", merged, "overlay", 0, opts);
        free(opts);
    } else {
        bind(merged, merged, 0, 1);
    }
    root_fd = open(merged, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) SETUP_FAILED("open %s", merged);
    mount_in_root("/proc", 0, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_in_root("/dev", 0, "tmpfs", "tmpfs", MS_NOSUID, "mode=755,size=65536k");
    for (size_t i = 0; i < sizeof DEVICES / sizeof DEVICES[0]; i++) {
        snprintf(q, sizeof q, "/dev/%s", DEVICES[i]);
        bind_in_root(q, q, 1, 0, 0);
    }
    fd = point_in_root("/dev/pts", 0, p, sizeof p);
    if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") == 0)
        link_in_root("pts/ptmx", "/dev", "ptmx");
    close(fd);
    mount_in_root("/dev/shm", 0, "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
    static const char *links[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                                     {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
    for (size_t i = 0; i < 4; i++) link_in_root(links[i][1], "/dev", links[i][0]);
    fd = point_in_root("/sys", 0, p, sizeof p);
    int sysfs = mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0;
    close(fd);
    if (!sysfs) bind_in_root("/sys", "/sys", 0, 1, 1);
    for (int i = 0; i < s->n_mounts; i++) {
        const struct mount_item *m = &s->mounts[i];
        int readonly = m->readonly[0] == '1';
        if (!strcmp(m->type, "tmpfs")) {
            mount_in_root(m->target, 0, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, m->options[0] ? m->options : "mode=755");
            if (readonly) remount_in_root(m->target, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV);
        } else {
            bind_in_root(m->source, m->target, is_regular(m->source), readonly, 1);
        }
    }
    close(root_fd);
    root_fd = -1;
}

static void pivot(const char *merged) {
    if (chdir(merged) != 0) SETUP_FAILED("chdir %s", merged);
    if (mkdir(".oldroot", 0755) != 0 && errno != EEXIST) SETUP_FAILED("mkdir .oldroot");
    if (syscall(SYS_pivot_root, ".", ".oldroot") != 0) SETUP_FAILED("pivot_root");
    if (chdir("/") != 0) SETUP_FAILED("chdir /");
    if (umount2("/.oldroot", MNT_DETACH) != 0) SETUP_FAILED("umount old root");
    if (rmdir("/.oldroot") != 0) SETUP_FAILED("rmdir /.oldroot");
}

static void mask_paths(void) {
    int exists;
    for (size_t i = 0; i < sizeof MASKED / sizeof MASKED[0]; i++) {
        int dir = is_dir(MASKED[i], &exists);
        if (!exists) continue;
        if (dir) do_mount("tmpfs", MASKED[i], "tmpfs", MS_RDONLY, "size=0");
        else bind("/dev/null", MASKED[i], 0, 0);
    }
    for (size_t i = 0; i < sizeof READONLY / sizeof READONLY[0]; i++) {
        is_dir(READONLY[i], &exists);
        if (!exists) continue;
        if (mount(READONLY[i], READONLY[i], NULL, MS_BIND | MS_REC, NULL) == 0)
            (void)mount(NULL, READONLY[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL);
    }
}

static void drop_caps(void) {
    for (int cap = 0; cap < 64; cap++) {
        int keep = 0;
        for (size_t i = 0; i < sizeof DEFAULT_CAPS / sizeof DEFAULT_CAPS[0]; i++) keep |= DEFAULT_CAPS[i] == cap;
        if (!keep) (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);  /* EINVAL past the kernel's last cap: fine */
    }
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static const char *resolve(const char *cmd, const char *path_env, char *buf, size_t size) {
    if (strchr(cmd, '/')) return cmd;
    const char *path = path_env ? path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (snprintf(buf, size, "%.*s/%s", (int)n, path, cmd) < (int)size && is_regular(buf) && access(buf, X_OK) == 0)
            return buf;
        if (!end) break;
        path = end + 1;
    }
    return NULL;
}

static void write_file(const char *path, const char *data, int optional) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && optional && errno == ENOENT) return;
    if (fd < 0) SETUP_FAILED("open %s", path);
    if (write(fd, data, strlen(data)) < 0) SETUP_FAILED("write %s", path);
    close(fd);
}

static void run_container(int spec_fd) {
    static struct spec s;
    char buf[PATH_MAX];
    parse_spec(spec_fd, &s);
    /* the container's cgroups: made here rather than by the agent (a cgroup mkdir can wait for an
       RCU grace period; here it holds up only this container) */
    for (int i = 0; i < s.n_cgroup_dirs; i++) mkdir_p(s.cgroup_dirs[i]);
    for (int i = 0; i < s.n_cgroup_writes; i++)
        write_file(s.cgroup_writes[i].path, s.cgroup_writes[i].value, s.cgroup_writes[i].optional[0] == '1');
    for (int i = 0; i < s.n_cgroup_procs; i++) write_file(s.cgroup_procs[i], "0", 0);
    if (s.netns) {
        int fd = open(s.netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) SETUP_FAILED("setns %s", s.netns);
        close(fd);
    }
    setup_rootfs(&s);
    pivot(s.merged);
    mask_paths();
    if (s.hostname && *s.hostname && sethostname(s.hostname, strlen(s.hostname)) != 0) SETUP_FAILED("sethostname");
    drop_caps();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) SETUP_FAILED("no_new_privs");
    const char *cwd = s.cwd && *s.cwd ? s.cwd : "/";
    if (chdir(cwd) != 0) die(125, "container setup failed: working directory '%s': %s", cwd, strerror(errno));
    if (s.gid >= 0 || s.uid >= 0) {
        if (setgroups(0, NULL) != 0) SETUP_FAILED("setgroups");
        if (setgid((gid_t)(s.gid >= 0 ? s.gid : (s.uid > 0 ? s.uid : 0))) != 0) SETUP_FAILED("setgid");
    }
    if (s.uid >= 0 && setuid((uid_t)s.uid) != 0) SETUP_FAILED("setuid");
    /* a credential change clears the parent-death signal: ask again */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    s.argv[s.n_argv] = NULL;
    s.env[s.n_env] = NULL;
    const char *path = resolve(s.argv[0], s.path_env, buf, sizeof buf);
    if (!path) die(127, "exec: \"%s\": executable file not found in $PATH", s.argv[0]);
    if (s.started_fd >= 0) {
        /* the container is set up and the workload is being exec'd: tell the runtime */
        (void)!write(s.started_fd, "1", 1);
        close(s.started_fd);
    }
    execve(path, s.argv, s.env);
    int err = errno;
    die(err == EACCES || err == ENOEXEC ? 126 : 127, "exec: \"%s\": %s", s.argv[0], strerror(err));
}

/* --------------------------------------------------------------------- the shim */

static void forward(int sig) {
    if (child_pid > 0) kill(child_pid, sig);
}

static void close_from(int lowest, int except) {
    if (except >= lowest) {
        if (except > lowest) syscall(SYS_close_range, lowest, except - 1, 0);
        syscall(SYS_close_range, except + 1, ~0U, 0);
    } else {
        syscall(SYS_close_range, lowest, ~0U, 0);
    }
}

static void exit_like(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit none = {0, 0};
        (void)setrlimit(RLIMIT_CORE, &none);      /* the container dumped its core already, if at all */
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        _exit(128 + sig);                          /* a signal whose default is not to die */
    }
    _exit(125);
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "spec") && strcmp(argv[1], "exec")))
        die(125, "usage: ccl-shim spec FD | ccl-shim exec PROGRAM [ARG...]");
    int spec_mode = !strcmp(argv[1], "spec");
    if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) != 0)
        die(125, "ccl-shim: unshare: %s", strerror(errno));
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        die(125, "ccl-shim: making / private: %s", strerror(errno));

    int guard[2];   /* the child sees EOF on guard[0] once the shim is gone */
    if (pipe2(guard, O_CLOEXEC) != 0) die(125, "ccl-shim: pipe: %s", strerror(errno));
    sigset_t fwd, old;
    sigemptyset(&fwd);
    for (size_t i = 0; i < N_FORWARDED; i++) sigaddset(&fwd, FORWARDED[i]);
    sigprocmask(SIG_BLOCK, &fwd, &old);

    pid_t pid = fork();
    if (pid < 0) die(125, "ccl-shim: fork: %s", strerror(errno));
    if (pid == 0) {
        close(guard[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die(125, "ccl-shim: PR_SET_PDEATHSIG: %s", strerror(errno));
        struct pollfd pf = {guard[0], POLLIN, 0};
        if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLIN))) _exit(137);   /* the shim is already gone */
        close(guard[0]);
        /* the workload starts with every signal at its default, unblocked: nothing ignored by
           whoever started the agent (a shell's `&` ignores SIGINT and SIGQUIT) leaks into it */
        for (int sig = 1; sig < _NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (spec_mode) run_container(atoi(argv[2]));
        execv(argv[2], argv + 2);
        die(errno == EACCES || errno == ENOEXEC ? 126 : 127, "ccl-shim: exec %s: %s", argv[2], strerror(errno));
    }
    child_pid = pid;
    close(guard[0]);
    close_from(3, guard[1]);   /* the shim keeps no pipe or spec descriptor of the container alive */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < N_FORWARDED; i++) sigaction(FORWARDED[i], &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* wait for the exit without reaping (WNOWAIT): until the reap below the pid is the child's
     * zombie, so a signal forwarded meanwhile cannot reach a stranger that got the pid recycled;
     * forwarding stops before the reap */
    for (;;) {
        siginfo_t exited;
        memset(&exited, 0, sizeof exited);
        if (waitid(P_PID, (id_t)pid, &exited, WEXITED | WNOWAIT) == 0) break;
        if (errno != EINTR) die(125, "ccl-shim: waitid: %s", strerror(errno));
    }
    child_pid = 0;
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, 0);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) die(125, "ccl-shim: waitpid: %s", strerror(errno));
    }
    exit_like(status);
    return 125;
}
