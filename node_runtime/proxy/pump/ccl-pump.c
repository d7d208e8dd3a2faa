/*
 * ccl-pump: the Service proxy's data pump, one small process per node agent.
 *
 * Built by the agent at start (node_runtime/proxy/compiled_pump.py, through node_runtime.native)
 * and started by it with one end of a unix SOCK_SEQPACKET socketpair as its control socket:
 *
 *   ccl-pump CONTROL_FD PARENT_PID [--transfer hybrid|splice]
 *
 * The agent accepts each client, connects it to a backend (retrying other endpoints, balancing,
 * affinity: all in Python) and hands the connected pair over: one message {ADD, id} carrying the
 * two sockets as SCM_RIGHTS. From then on the bytes are moved here, never entering Python, with
 * the same loop as the Python pump (`_Pump` in forwarder.py), which is correct and tested:
 * one level-triggered epoll; per connection and direction a pipe, `src` spliced into it only
 * while it is empty, then spliced out into `dst` (by default the first read of each turn is a
 * recv + send through a 16 KiB buffer instead, what dst does not take going into the pipe: see
 * copy_in); a source's EOF passed on with shutdown(SHUT_WR) once its pipe is flushed; a socket
 * that hung up is taken out of epoll ("parked") and drained to its end whenever its pipe empties;
 * a finished connection's descriptors are closed only after the whole batch of events (a reused
 * fd number would otherwise get the old one's stale event); an error drops only that connection.
 *
 * Back to the agent, batched once per epoll batch: {END, reason, id} for every connection that
 * ended (so the agent's open_links() stays true); on {DUMP, seq} one or more {LINES, seq} messages
 * of text (one line per open connection: peers and each direction's state), then {DUMP_END, n, seq}.
 * Reports never make the data path wait: when the agent is slow to read them they are queued here
 * and sent as the control socket drains.
 *
 * It exits when the agent goes: on EOF of the control socket, and by PR_SET_PDEATHSIG(SIGKILL)
 * (PARENT_PID closes the race where the agent died before the prctl). The agent sees our exit as
 * EOF on its end and starts a new pump with its next connection, or falls back to the Python one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* control messages: a 16-byte header {u32 type, u32 arg, u64 id}, text after it for LINES */
enum { MSG_ADD = 1, MSG_DUMP = 2 };                        /* agent -> pump */
enum { MSG_END = 1, MSG_LINES = 2, MSG_DUMP_END = 3 };    /* pump -> agent */
enum { END_CLOSED = 0, END_BROKEN = 1, END_REFUSED = 2 };

struct record {
    uint32_t type;
    uint32_t arg;
    uint64_t id;
};

#define PIPE_BYTES (1 << 16)    /* what one splice into an empty default pipe (16 pages) can take */
#define COPY_BYTES (1 << 14)    /* the first read of a turn (see copy_in) */
#define MAX_EVENTS 512
#define SPLICE_NB (SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
#define END_BATCH 1024          /* END records per message */
#define LINES_BYTES 16384       /* text per LINES message */

/* One direction of a connection: src -> pipe -> dst. `pending` counts the bytes in the pipe. */
struct dir {
    int src, dst;
    int r, w;
    size_t pending;
    int eof, broken, shut;
};

/* A proxied connection. Side 0 is the client (read by `up`, written by `down`), side 1 the
 * upstream (read by `down`, written by `up`). */
struct link {
    uint64_t id;
    int fd[2];
    struct dir up, down;
    uint32_t mask[2];
    int watched[2];             /* in the epoll; a parked side is not */
    int dropped;
    int reason;
    struct link *prev, *next;   /* every open link, for DUMP */
    struct link *next_finished;
};

static int ep = -1;
static int control = -1;
static struct link *links = NULL;
static size_t n_links = 0;
static struct link *finished = NULL;
static struct record ends[END_BATCH];
static size_t n_ends = 0;

static void fatal(const char *what) {
    fprintf(stderr, "ccl-pump: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ------------------------------------------------------------------ talking to the agent */

/* Reports the agent has not read yet: the data path never waits for the agent (its reader thread
 * may be starved of the GIL for a while); they go out when the control socket is writable again. */
struct queued {
    struct queued *next;
    size_t len;
    char data[];
};
static struct queued *outq_head = NULL, *outq_tail = NULL;
static size_t outq_bytes = 0;
#define OUTQ_MAX (64u << 20)    /* an agent that reads nothing for this long is hung: give up */

static void watch_control(int want_out) {
    struct epoll_event ce = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u64 = 0};
    epoll_ctl(ep, EPOLL_CTL_MOD, control, &ce);
}

/* 1 sent, 0 would block; exits when the agent is gone (so are we). */
static int try_send(const void *buf, size_t len) {
    for (;;) {
        if (send(control, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == ENOBUFS)
            return 0;
        exit(0);
    }
}

static void send_message(const void *buf, size_t len) {
    if (!outq_head && try_send(buf, len))
        return;
    struct queued *q = malloc(sizeof(*q) + len);
    if (!q || outq_bytes + len > OUTQ_MAX) {
        fprintf(stderr, "ccl-pump: the agent does not read its reports (%zu bytes waiting): exiting\n", outq_bytes);
        exit(1);
    }
    q->next = NULL;
    q->len = len;
    memcpy(q->data, buf, len);
    if (outq_tail)
        outq_tail->next = q;
    else {
        outq_head = q;
        watch_control(1);
    }
    outq_tail = q;
    outq_bytes += len;
}

static void flush_queue(void) {
    while (outq_head && try_send(outq_head->data, outq_head->len)) {
        struct queued *q = outq_head;
        outq_head = q->next;
        outq_bytes -= q->len;
        free(q);
    }
    if (!outq_head) {
        outq_tail = NULL;
        watch_control(0);
    }
}

static void report_end(uint64_t id, int reason) {
    ends[n_ends].type = MSG_END;
    ends[n_ends].arg = (uint32_t)reason;
    ends[n_ends].id = id;
    if (++n_ends == END_BATCH) {
        send_message(ends, sizeof(ends));
        n_ends = 0;
    }
}

static void flush_ends(void) {
    if (n_ends) {
        send_message(ends, n_ends * sizeof(struct record));
        n_ends = 0;
    }
}

/* ------------------------------------------------------------------ one direction */

static void reset_socket(int fd) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* Write the pipe into dst: 1 flushed (and dst's FIN sent once src ended), 0 dst would block,
 * -1 dst failed (that peer is gone). */
static int flush_dir(struct dir *d) {
    while (d->pending) {
        ssize_t n = splice(d->r, NULL, d->dst, NULL, d->pending, SPLICE_NB);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        d->pending -= (size_t)n;
    }
    if (d->eof && !d->shut) {
        d->shut = 1;
        shutdown(d->dst, SHUT_WR);
    }
    return 1;
}

/* The first read of each turn goes through a small buffer of ours (recv + send: cheaper than two
 * splices for the few hundred bytes of a request or an answer, measured ~10% less CPU per request
 * in `clusterctl bench proxy`); a read that fills it means a bulk transfer, and the rest of that
 * turn is spliced (no copies). `--transfer splice` splices every read, as the Python pump does. */
static int copy_first = 1;
static char copy_buf[COPY_BYTES];

/* recv into our buffer and send on; what dst does not take now goes into the (empty) pipe, so
 * from there on it is the same state as after a splice: `pending` bytes in the pipe. */
static ssize_t copy_in(struct dir *d, int *dst_failed) {
    ssize_t n = recv(d->src, copy_buf, COPY_BYTES, MSG_DONTWAIT);
    if (n <= 0)
        return n;
    ssize_t m = send(d->dst, copy_buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (m < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            *dst_failed = 1;
            return n;
        }
        m = 0;
    }
    while (m < n) {
        ssize_t w = write(d->w, copy_buf + m, (size_t)(n - m));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            *dst_failed = 1;    /* cannot happen: the pipe was empty and holds more than COPY_BYTES */
            return n;
        }
        m += w;
        d->pending += (size_t)w;
    }
    return n;
}

/* Move what src holds into dst: 1 when src has nothing more for now, 0 when the pipe is stuck
 * behind a full dst or src ended, -1 when dst failed. Without `drain` a short read also ends the
 * turn (1): level-triggered epoll reports src again if more came, which saves one EAGAIN read
 * per message. `drain` is for a parked source: only reading it to its end finds the rest. */
static int pump_dir(struct dir *d, int drain) {
    int first = copy_first;
    while (!d->eof) {
        if (d->pending) {
            int r = flush_dir(d);
            if (r <= 0)
                return r;
        }
        ssize_t n;
        size_t asked;
        if (first) {
            int dst_failed = 0;
            first = 0;
            asked = COPY_BYTES;
            n = copy_in(d, &dst_failed);
            if (dst_failed)
                return -1;
        } else {
            asked = PIPE_BYTES;
            n = splice(d->src, NULL, d->w, NULL, PIPE_BYTES, SPLICE_NB);
            if (n > 0)
                d->pending = (size_t)n;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 1;
            d->broken = 1;      /* reset or timed out: its end; the link closes once flushed */
            n = 0;
        }
        if (n == 0) {
            d->eof = 1;
            return flush_dir(d) < 0 ? -1 : 0;
        }
        int r = flush_dir(d);
        if (r <= 0)
            return r;
        if ((size_t)n < asked && !drain)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ links */

static struct dir *reading_of(struct link *l, int side) { return side ? &l->down : &l->up; }
static struct dir *writing_of(struct link *l, int side) { return side ? &l->up : &l->down; }

static uint32_t mask_of(struct dir *reading, struct dir *writing) {
    uint32_t m = 0;
    if (!reading->eof && !reading->pending)
        m |= EPOLLIN;
    if (writing->pending)
        m |= EPOLLOUT;
    return m;
}

static int over(struct link *l) {
    return (l->up.shut && l->down.shut) || (l->up.broken && l->up.shut) || (l->down.broken && l->down.shut);
}

static uint64_t tag(struct link *l, int side) { return (uint64_t)(uintptr_t)l | (uint64_t)side; }

/* Forget a link now; close it after this batch of events (see the header). */
static void drop(struct link *l, int reason) {
    if (l->dropped)
        return;
    l->dropped = 1;
    l->reason = reason;
    for (int s = 0; s < 2; s++)
        if (l->watched[s]) {
            epoll_ctl(ep, EPOLL_CTL_DEL, l->fd[s], NULL);
            l->watched[s] = 0;
        }
    if (l->prev)
        l->prev->next = l->next;
    else
        links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    n_links--;
    l->next_finished = finished;
    finished = l;
}

static void close_finished(void) {
    while (finished) {
        struct link *l = finished;
        finished = l->next_finished;
        close(l->up.r);
        close(l->up.w);
        close(l->down.r);
        close(l->down.w);
        close(l->fd[0]);
        close(l->fd[1]);
        report_end(l->id, l->reason);
        free(l);
    }
}

static void park(struct link *l, int side) {
    if (l->watched[side]) {
        epoll_ctl(ep, EPOLL_CTL_DEL, l->fd[side], NULL);
        l->watched[side] = 0;
    }
}

static int unpark(struct link *l, int side) {
    struct epoll_event ev = {.events = mask_of(reading_of(l, side), writing_of(l, side)), .data.u64 = tag(l, side)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd[side], &ev) < 0)
        return -1;
    l->mask[side] = ev.events;
    l->watched[side] = 1;
    return 0;
}

static void serve(struct link *l, int side, uint32_t ev) {
    struct dir *reading = reading_of(l, side), *writing = writing_of(l, side);
    int hung_up = 0, quiet = 0;
    if (ev == EPOLLIN) {
        /* the steady flow: if it all went through and the source did not end, no mask changes */
        if (pump_dir(reading, 0) < 0) {
            drop(l, END_BROKEN);
            return;
        }
        if (!reading->pending && !reading->eof)
            return;
    } else {
        hung_up = (ev & (EPOLLHUP | EPOLLERR)) != 0;
        if (writing->pending && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
            int r = flush_dir(writing);
            if (r < 0) {
                drop(l, END_BROKEN);
                return;
            }
            if (r > 0 && !l->watched[1 - side]) {
                int p = pump_dir(writing, 1);
                if (p < 0) {
                    drop(l, END_BROKEN);
                    return;
                }
                if (p > 0 && unpark(l, 1 - side) < 0) {
                    drop(l, END_BROKEN);
                    return;
                }
            }
        }
        if (!reading->pending && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            quiet = pump_dir(reading, hung_up);
            if (quiet < 0) {
                drop(l, END_BROKEN);
                return;
            }
        }
    }
    if (over(l)) {
        drop(l, (l->up.broken || l->down.broken) ? END_BROKEN : END_CLOSED);
        return;
    }
    if (hung_up && !quiet && !writing->pending)
        park(l, side);
    for (int s = 0; s < 2; s++) {
        if (!l->watched[s])
            continue;
        uint32_t m = mask_of(reading_of(l, s), writing_of(l, s));
        if (m != l->mask[s]) {          /* only on change: none at all in steady flow */
            struct epoll_event e = {.events = m, .data.u64 = tag(l, s)};
            epoll_ctl(ep, EPOLL_CTL_MOD, l->fd[s], &e);
            l->mask[s] = m;
        }
    }
}

static void set_socket(int fd) {
    int one = 1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void take(uint64_t id, int client, int upstream) {
    int p1[2], p2[2];
    struct link *l = calloc(1, sizeof(*l));
    if (!l || pipe2(p1, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(l);
        goto refuse;
    }
    if (pipe2(p2, O_CLOEXEC | O_NONBLOCK) < 0) {
        close(p1[0]);
        close(p1[1]);
        free(l);
        goto refuse;
    }
    set_socket(client);
    set_socket(upstream);
    l->id = id;
    l->fd[0] = client;
    l->fd[1] = upstream;
    l->up = (struct dir){.src = client, .dst = upstream, .r = p1[0], .w = p1[1]};
    l->down = (struct dir){.src = upstream, .dst = client, .r = p2[0], .w = p2[1]};
    l->next = links;
    if (links)
        links->prev = l;
    links = l;
    n_links++;
    for (int s = 0; s < 2; s++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = tag(l, s)};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd[s], &e) < 0) {
            drop(l, END_BROKEN);
            return;
        }
        l->mask[s] = EPOLLIN;
        l->watched[s] = 1;
    }
    return;
refuse:                                 /* no fds left for its pipes: refuse this one, keep the others */
    fprintf(stderr, "ccl-pump: cannot take connection %llu: %s\n", (unsigned long long)id, strerror(errno));
    reset_socket(client);
    close(upstream);
    report_end(id, END_REFUSED);
}

/* ------------------------------------------------------------------ DUMP */

static void peer(int fd, char *out, size_t len) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(out, len, "(%s)", strerror(errno));
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, len, "('%s', %d)", ip, port);
}

static int describe_dir(char *out, size_t len, const char *name, struct dir *d) {
    return snprintf(out, len, "%s:pending=%zu,eof=%d,shut=%d,broken=%d", name, d->pending, d->eof, d->shut, d->broken);
}

static void dump(uint64_t seq) {
    static char msg[sizeof(struct record) + LINES_BYTES];
    size_t used = 0;
    uint64_t count = 0;
    for (struct link *l = links; l; l = l->next) {
        char line[512], a[128], b[128], up[128], down[128], wc[32], wu[32];
        peer(l->fd[0], a, sizeof(a));
        peer(l->fd[1], b, sizeof(b));
        describe_dir(up, sizeof(up), "up", &l->up);
        describe_dir(down, sizeof(down), "down", &l->down);
        l->watched[0] ? snprintf(wc, sizeof(wc), "%u", l->mask[0]) : snprintf(wc, sizeof(wc), "parked");
        l->watched[1] ? snprintf(wu, sizeof(wu), "%u", l->mask[1]) : snprintf(wu, sizeof(wu), "parked");
        int n = snprintf(line, sizeof(line), "%s -> %s %s %s client=%s upstream=%s\n", a, b, up, down, wc, wu);
        if (n < 0)
            continue;
        if ((size_t)n >= sizeof(line))
            n = sizeof(line) - 1;
        if (used + (size_t)n > LINES_BYTES) {
            struct record h = {.type = MSG_LINES, .id = seq};
            memcpy(msg, &h, sizeof(h));
            send_message(msg, sizeof(h) + used);
            used = 0;
        }
        memcpy(msg + sizeof(struct record) + used, line, (size_t)n);
        used += (size_t)n;
        count++;
    }
    if (used) {
        struct record h = {.type = MSG_LINES, .id = seq};
        memcpy(msg, &h, sizeof(h));
        send_message(msg, sizeof(h) + used);
    }
    struct record end = {.type = MSG_DUMP_END, .arg = (uint32_t)count, .id = seq};
    send_message(&end, sizeof(end));
}

/* ------------------------------------------------------------------ control socket */

/* Everything the agent sent; EOF (the agent closed us or died) ends the process. */
static void read_control(void) {
    for (;;) {
        struct record rec;
        union {
            char buf[CMSG_SPACE(2 * sizeof(int))];
            struct cmsghdr align;
        } cm;
        struct iovec iov = {.iov_base = &rec, .iov_len = sizeof(rec)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
        ssize_t n = recvmsg(control, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            fatal("reading the control socket");
        }
        if (n == 0)
            exit(0);
        int fds[2] = {-1, -1}, nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *got = (int *)CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                    if (nfds < 2)
                        fds[nfds++] = got[i];
                    else
                        close(got[i]);
                }
            }
        if ((size_t)n < sizeof(rec)) {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        if (rec.type == MSG_ADD) {
            if (nfds == 2 && !(mh.msg_flags & MSG_CTRUNC)) {
                take(rec.id, fds[0], fds[1]);
            } else {            /* we ran out of fds and the kernel dropped them (MSG_CTRUNC) */
                fprintf(stderr, "ccl-pump: connection %llu arrived without its sockets\n", (unsigned long long)rec.id);
                for (int i = 0; i < nfds; i++)
                    close(fds[i]);
                report_end(rec.id, END_REFUSED);
            }
        } else {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            if (rec.type == MSG_DUMP)
                dump(rec.id);
        }
    }
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[3], "--transfer") == 0) {
        if (strcmp(argv[4], "splice") == 0)
            copy_first = 0;
        else if (strcmp(argv[4], "hybrid") != 0) {
            fprintf(stderr, "ccl-pump: --transfer is hybrid or splice, not %s\n", argv[4]);
            return 2;
        }
        argc = 3;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: ccl-pump CONTROL_FD PARENT_PID [--transfer hybrid|splice]\n");
        return 2;
    }
    control = atoi(argv[1]);
    pid_t parent = (pid_t)atoi(argv[2]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        fatal("PR_SET_PDEATHSIG");
    if (getppid() != parent)
        return 0;               /* the agent died before the prctl: nobody to serve */
    signal(SIGPIPE, SIG_IGN);
    /* the agent decides when the pump stops (control-socket EOF; PDEATHSIG if it dies): a service
       manager's SIGTERM to the agent's whole process group must not cut the connections the agent
       lets finish while it stops */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    /* six descriptors per connection (two sockets, two pipes): take every one we may have */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fcntl(control, F_SETFD, FD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        fatal("epoll_create1");
    struct epoll_event ce = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, control, &ce) < 0)
        fatal("watching the control socket");
    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fatal("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            uint64_t t = events[i].data.u64;
            if (t == 0) {
                uint32_t e = events[i].events;
                if (e & (EPOLLHUP | EPOLLERR) && !(e & EPOLLIN))
                    return 0;   /* the agent's end is gone */
                if (e & EPOLLOUT)
                    flush_queue();
                if (e & EPOLLIN)
                    read_control();
                continue;
            }
            struct link *l = (struct link *)(uintptr_t)(t & ~(uint64_t)1);
            if (l->dropped)
                continue;       /* its connection ended earlier in this batch */
            serve(l, (int)(t & 1), events[i].events);
        }
        close_finished();
        flush_ends();
    }
}
