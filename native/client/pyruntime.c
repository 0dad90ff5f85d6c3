/*
 * pyruntime.c - the `pyruntime` command: hand the invocation to `pyruntime serve`,
 * or run the Python CLI when no server answers.
 *
 * Why: every verb as a new CPython costs ~15 ms of interpreter start-up plus its
 * imports, three times for create + start + delete (docs/served.md).  A server
 * (pyruntime/served/) keeps the interpreter warm and forks a worker per call.
 * The worker does all the policy; this program only:
 *   - sends argv, environ, cwd, umask and every open fd (SCM_RIGHTS), so the worker
 *     sees exactly what a cold `pyruntime` would have inherited;
 *   - stays the parent of the container's processes: the worker lays the plan out
 *     in a memfd at a fixed address (SPAWN) and this program maps it at the same
 *     address and calls pyrt_spawn(), so stage1 and init are forked from here and
 *     init is reparented to the caller's subreaper (containerd's shim, conmon)
 *     exactly as with runc; WAIT reaps them the same way;
 *   - forwards the signals it gets to the worker, and exits with its status (EXIT).
 * It makes no decision of its own: with no server, a refusal (FALLBACK: another build
 * id, a caller with other privileges...) or no answer within PYRUNTIME_SERVE_TIMEOUT_MS
 * (5 s), it execs the Python CLI, `pyruntime-python` next to itself.  Until a worker
 * has answered PID nothing has been done and no worker holds any of our fds (they go
 * in FDS, after the answer), so running cold is safe; after it, a worker that dies
 * leaves one line on stderr and exit status 1.
 *
 * Messages are SOCK_SEQPACKET records of NUL-terminated fields; the first field
 * is the kind.  See pyruntime/served/protocol.py for the other side.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

#define MAX_FDS 250         /* SCM_MAX_FD is 253 */
#define MSG_MAX (1 << 20)   /* a record from the worker */
#define DEFAULT_ROOT "/run/pyruntime"
#define SOCKET_NAME "serve.sock"
#define COLD_NAME "pyruntime-python"
#define TIMEOUT_MS 5000     /* connect + HELLO + the first answer; then run cold */
#define TIMEOUT_ENV "PYRUNTIME_SERVE_TIMEOUT_MS"

#ifndef PYRT_BUILD_ID
#define PYRT_BUILD_ID "unknown" /* matches no server: every call runs cold */
#endif
/* The package this client was built with (the Makefile passes its hash; see
   pyruntime/served/buildid.py); the marker lets the tests read it from the binary. */
static const char build_marker[] = "pyruntime-build-id=" PYRT_BUILD_ID;

extern char **environ;

static volatile pid_t worker_pid;

static void cold(char **argv) __attribute__((noreturn));

/* No server: the Python CLI, next to this binary, with the same argv. */
static void cold(char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + sizeof COLD_NAME];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *slash;

    if (n < 0) {
        fprintf(stderr, "pyruntime: /proc/self/exe: %s\n", strerror(errno));
        exit(1);
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash)
        slash[1] = '\0';
    snprintf(path, sizeof path, "%s%s", slash ? self : "", COLD_NAME);
    argv[0] = path;
    execv(path, argv);
    fprintf(stderr, "pyruntime: %s: %s\n", path, strerror(errno));
    exit(1);
}

/* $PYRUNTIME_SERVE_SOCKET, else <--root>/serve.sock; the global options come before
   the verb, and only these take a value. */
static int socket_path(int argc, char **argv, char *out, size_t len)
{
    const char *env = getenv("PYRUNTIME_SERVE_SOCKET");
    const char *root = DEFAULT_ROOT;
    int i;

    if (env && *env)
        return snprintf(out, len, "%s", env) < (int)len ? 0 : -1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            break;
        if (!strcmp(a, "--root") && i + 1 < argc) {
            root = argv[++i];
        } else if (!strncmp(a, "--root=", 7)) {
            root = a + 7;
        } else if (!strcmp(a, "--log") || !strcmp(a, "--log-format") || !strcmp(a, "--criu") ||
                   !strcmp(a, "--rootless") || !strcmp(a, "--image-root")) {
            i++;
        }
    }
    /* A non-root user's default root, as pyruntime/rootless.py decides it. */
    if (!strcmp(root, DEFAULT_ROOT) && geteuid() != 0) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && *xdg)
            return snprintf(out, len, "%s/pyruntime/%s", xdg, SOCKET_NAME) < (int)len ? 0 : -1;
    }
    return snprintf(out, len, "%s/%s", root, SOCKET_NAME) < (int)len ? 0 : -1;
}

/* CLOCK_MONOTONIC in ms. */
static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long timeout_ms(void)
{
    const char *env = getenv(TIMEOUT_ENV);
    char *end;
    long long v;

    if (!env || !*env)
        return TIMEOUT_MS;
    v = strtoll(env, &end, 10);
    if (*end || v <= 0)
        return TIMEOUT_MS;
    return v < INT_MAX ? v : INT_MAX; /* poll() takes an int */
}

/* A connect to a server whose backlog is full waits at most `ms` (SO_SNDTIMEO bounds
   a unix socket's connect, and the HELLO's send). */
static int connect_server(const char *path, long long ms)
{
    struct sockaddr_un sa;
    struct ucred cred;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    socklen_t len = sizeof cred;
    int fd;

    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    /* The server forks what this process runs, with its privileges: only a server of
       our own user is trusted (a socket someone else made is ignored: run cold). */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A growing record of NUL-terminated fields. */
struct rec {
    char *buf;
    size_t len, cap;
};

static int put(struct rec *r, const char *s)
{
    size_t n = strlen(s) + 1;

    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        char *b;
        while (r->len + n > cap)
            cap *= 2;
        b = realloc(r->buf, cap);
        if (!b)
            return -1;
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    return 0;
}

static int putn(struct rec *r, long long v)
{
    char num[32];

    snprintf(num, sizeof num, "%lld", v);
    return put(r, num);
}

static ssize_t send_rec(int sock, const struct rec *r, const int *fds, int n_fds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct iovec iov = {.iov_base = r->buf, .iov_len = r->len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (n_fds > 0) {
        struct cmsghdr *cm;
        memset(cbuf, 0, sizeof cbuf);
        msg.msg_control = cbuf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Every open fd but `skip`, ascending; -1 if there are too many to pass. */
static int open_fds(int skip, int *out, int max)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0, i, j;

    if (!d)
        return -1;
    while ((e = readdir(d))) {
        int fd;
        if (e->d_name[0] == '.')
            continue;
        fd = atoi(e->d_name);
        if (fd == skip || fd == dirfd(d))
            continue;
        if (n == max) {
            closedir(d);
            return -1;
        }
        out[n++] = fd;
    }
    closedir(d);
    for (i = 1; i < n; i++) /* insertion sort: a handful of fds */
        for (j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

/* HELLO: the call, and the numbers of our fds (fds[], n_fds: sent later, in FDS, once
   a worker has taken the call: one that hangs before then holds none of them). */
static int hello(int sock, int argc, char **argv, int *fds, int *n_fds)
{
    struct rec r = {0};
    char cwd[PATH_MAX], id[sizeof build_marker + 32];
    int i, ok;
    mode_t mask = umask(0);
    char **e;

    umask(mask);
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0'; /* deleted cwd: the worker stays in / */
    *n_fds = open_fds(sock, fds, MAX_FDS);
    if (*n_fds < 0)
        return -1;
    snprintf(id, sizeof id, "%s:%zu", strchr(build_marker, '=') + 1, sizeof(struct pyrt_plan));
    ok = !put(&r, "HELLO") && !put(&r, id) && !put(&r, cwd) && !putn(&r, mask) &&
         !putn(&r, sock) && !putn(&r, argc);
    for (i = 0; ok && i < argc; i++)
        ok = !put(&r, argv[i]);
    for (e = environ; ok && *e; e++)
        ;
    ok = ok && !putn(&r, e - environ);
    for (e = environ; ok && *e; e++)
        ok = !put(&r, *e);
    ok = ok && !putn(&r, *n_fds);
    for (i = 0; ok && i < *n_fds; i++) {
        int flags = fcntl(fds[i], F_GETFD);
        ok = !putn(&r, fds[i]) && !putn(&r, flags > 0 && (flags & FD_CLOEXEC));
    }
    ok = ok && send_rec(sock, &r, NULL, 0) == (ssize_t)r.len;
    free(r.buf);
    return ok ? 0 : -1;
}

static int send_fds(int sock, const int *fds, int n_fds)
{
    struct rec r = {0};
    int ok = !put(&r, "FDS") && send_rec(sock, &r, fds, n_fds) == (ssize_t)r.len;

    free(r.buf);
    return ok ? 0 : -1;
}

static int reply(int sock, long long a, long long b)
{
    struct rec r = {0};
    int ok = !put(&r, "R") && !putn(&r, a) && !putn(&r, b) &&
             send_rec(sock, &r, NULL, 0) == (ssize_t)r.len;

    free(r.buf);
    return ok ? 0 : -1;
}

static void forward(int sig)
{
    int saved = errno;

    if (worker_pid > 0)
        kill(worker_pid, sig);
    errno = saved;
}

/* The signals a cold pyruntime would get go to the worker, which acts as that process
   (run and exec forward them on to the container). */
static void forward_signals(void)
{
    static const int sigs[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM,
                               SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGWINCH, SIGPIPE};
    struct sigaction sa;
    size_t i;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* Fields of a record: out[i] points into buf. */
static int fields(char *buf, size_t len, char **out, int max)
{
    int n = 0;
    size_t i = 0;

    while (i < len && n < max) {
        out[n++] = buf + i;
        i += strnlen(buf + i, len - i) + 1;
    }
    return n;
}

/* Move fd to a number >= floor (close-on-exec); -1 on failure. */
static int lift(int fd, int floor)
{
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, floor);

    close(fd);
    return moved;
}

/*
 * SPAWN base len plan n (target cloexec)*n, fds: memfd then n fds: map the memfd at
 * base (the worker's arena), and pyrt_spawn() the struct pyrt_plan at plan.  The fds are the
 * worker's own (sync socket, cgroup dir, idmapped trees, console socket): they
 * go to the same numbers here, since the plan names them by number.  The worker
 * keeps the numbers of this process's fds and of this socket taken, so no
 * target is one of ours.
 */
static long long spawn(char **f, int nf, int *fds, int n_fds)
{
    uintptr_t addr, plan;
    size_t len;
    int n, i, floor = 3;
    void *map;
    long long rc;

    if (nf < 5 || n_fds < 1) {
        for (i = 0; i < n_fds; i++)
            close(fds[i]);
        return -EPROTO;
    }
    addr = (uintptr_t)strtoull(f[1], NULL, 10);
    len = (size_t)strtoull(f[2], NULL, 10);
    plan = (uintptr_t)strtoull(f[3], NULL, 10);
    n = atoi(f[4]);
    if (n != n_fds - 1 || nf < 5 + 2 * n || plan < addr || plan >= addr + len) {
        for (i = 0; i < n_fds; i++)
            close(fds[i]);
        return -EPROTO;
    }
    map = mmap((void *)addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE,
               fds[0], 0);
    rc = map == MAP_FAILED ? -errno : 0;
    close(fds[0]);
    if (rc == 0 && (uintptr_t)map != addr) { /* a kernel without MAP_FIXED_NOREPLACE */
        munmap(map, len);
        rc = -EEXIST;
    }
    if (rc < 0) {
        for (i = 1; i < n_fds; i++)
            close(fds[i]);
        return rc;
    }
    for (i = 0; i < n; i++)
        if (atoi(f[5 + 2 * i]) >= floor)
            floor = atoi(f[5 + 2 * i]) + 1;
    for (i = 1; i < n_fds; i++)
        if (fds[i] >= floor)
            floor = fds[i] + 1;
    for (i = 1; i < n_fds; i++) /* out of the way of the targets first */
        fds[i] = lift(fds[i], floor);
    for (i = 0; i < n; i++) {
        int target = atoi(f[5 + 2 * i]), cloexec = atoi(f[6 + 2 * i]);
        if (fds[i + 1] < 0 || dup3(fds[i + 1], target, cloexec ? O_CLOEXEC : 0) < 0) {
            rc = -errno;
            goto out;
        }
        close(fds[i + 1]);
        fds[i + 1] = target;
    }
    rc = pyrt_spawn((const struct pyrt_plan *)plan);
out:
    for (i = 1; i < n_fds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    munmap(map, len);
    return rc;
}

static void worker_died(const char *why) __attribute__((noreturn));

/* The worker took the call and is gone: it may have done part of it, so running it
   again cold is not safe (a half-made create is for `delete --force`). */
static void worker_died(const char *why)
{
    fprintf(stderr, "pyruntime: the server's worker died during the call (%s)\n", why);
    exit(1);
}

/* WAIT: waitpid() for the worker, watching the worker's socket meanwhile: if the worker
   dies, say so now instead of when the container exits. */
static pid_t wait_child(int sock, pid_t pid, int *status, int options)
{
    int pidfd = -1;
    pid_t got;

    if (pid > 0 && !(options & (WNOHANG | WUNTRACED | WCONTINUED))) /* waits for an exit */
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    while (pidfd >= 0) {
        struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = sock, .events = POLLRDHUP}};
        int n = poll(p, 2, -1);

        if (n < 0 && errno == EINTR)
            continue; /* a forwarded signal */
        if (n < 0 || (p[0].revents & POLLIN))
            break;
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
            close(pidfd);
            worker_died("connection closed");
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    do
        got = waitpid(pid, status, options);
    while (got < 0 && errno == EINTR);
    return got;
}

/* One record from the worker: its length, 0 at end of stream, -1 on error (errno), -2 if
   `deadline` (ms, CLOCK_MONOTONIC; 0 for none) passed first. */
static ssize_t recv_rec(int sock, struct msghdr *msg, long long deadline)
{
    ssize_t n;

    for (;;) {
        if (deadline) {
            struct pollfd p = {.fd = sock, .events = POLLIN};
            long long left = deadline - now_ms();
            int k = left > 0 ? poll(&p, 1, (int)left) : 0;
            if (k < 0 && errno == EINTR)
                continue;
            if (k == 0)
                return -2;
        }
        n = recvmsg(sock, msg, MSG_CMSG_CLOEXEC);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

int main(int argc, char **argv)
{
    static char buf[MSG_MAX];
    char path[PATH_MAX];
    int sock, my_fds[MAX_FDS], n_my_fds = 0;
    long long ms = timeout_ms(), deadline = now_ms() + ms;
    int served = 0; /* the worker has our fds: no running cold any more */

    if (socket_path(argc, argv, path, sizeof path) < 0 || (sock = connect_server(path, ms)) < 0)
        cold(argv);
    if (hello(sock, argc, argv, my_fds, &n_my_fds) < 0) { /* too big, or no answer */
        close(sock);
        cold(argv);
    }
    for (;;) {
        char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf - 1};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        int fds[MAX_FDS], n_fds = 0, nf;
        char *f[4 + 2 * MAX_FDS];
        struct cmsghdr *cm;
        ssize_t n = recv_rec(sock, &msg, served ? 0 : deadline);

        if (n <= 0 && !served) { /* no worker took the call: nothing was done */
            close(sock);
            cold(argv);
        }
        if (n <= 0)
            worker_died(n < 0 ? strerror(errno) : "connection closed");
        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                if (k > MAX_FDS - n_fds)
                    k = MAX_FDS - n_fds;
                memcpy(fds + n_fds, CMSG_DATA(cm), sizeof(int) * k);
                n_fds += k;
            }
        buf[n] = '\0';
        nf = fields(buf, (size_t)n, f, (int)(sizeof f / sizeof f[0]));
        if (nf < 1)
            continue;
        if (!served) {
            struct timeval none = {0};
            if (strcmp(f[0], "PID") || nf < 2) { /* FALLBACK, or not a worker we know */
                while (n_fds > 0)
                    close(fds[--n_fds]);
                close(sock);
                cold(argv);
            }
            /* From here the call is the worker's: no time limit, and if it dies, one
               line saying so.  If it is gone already, it never had our fds: run cold. */
            if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none) < 0 ||
                send_fds(sock, my_fds, n_my_fds) < 0) {
                close(sock);
                cold(argv);
            }
            served = 1;
            worker_pid = atoi(f[1]);
            forward_signals();
        } else if (!strcmp(f[0], "SPAWN")) {
            if (reply(sock, spawn(f, nf, fds, n_fds), 0) < 0)
                worker_died(strerror(errno));
            continue;
        } else if (!strcmp(f[0], "WAIT") && nf >= 3) {
            int status = 0;
            pid_t got = wait_child(sock, atoi(f[1]), &status, atoi(f[2]));
            if (reply(sock, got < 0 ? -errno : got, status) < 0)
                worker_died(strerror(errno));
        } else if (!strcmp(f[0], "EXIT") && nf >= 2) {
            return atoi(f[1]);
        }
        while (n_fds > 0) /* fds nobody asked for */
            close(fds[--n_fds]);
    }
}
