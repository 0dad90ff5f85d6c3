/*
 * seccomp_load.c - init's side of seccomp: load the BPF that Python compiled
 * (seccomp.c) with seccomp(2), and hand a NOTIFY listener to its agent.
 *
 * What seccomp_load() of libseccomp would do, minus what runc turns off:
 * SECCOMP_SET_MODE_FILTER with the profile's flags, no PR_SET_NO_NEW_PRIVS of
 * its own (no_new_privs is the process's setting, creds.c), and
 * SECCOMP_FILTER_FLAG_NEW_LISTENER when an action is NOTIFY (set by Python).
 *
 * The listener's agent is reached through an AF_UNIX stream socket connected
 * before pivot_root (the path is a host path); the listener fd goes with the
 * container process state JSON in one SCM_RIGHTS message, then both fds are
 * closed.  The pid in that JSON is init's pid as the runtime sees it, read
 * from the host's /proc/self before the rootfs is set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "pyrt.h"

#define MAX_STATE_PIECES 8

/* Before the rootfs: connect to the agent and learn our pid as the runtime sees it. */
int pyrt_seccomp_prepare(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    struct sockaddr_un addr;
    char buf[32];
    ssize_t n;
    int fd;

    if (!p->seccomp_bpf || !(p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER))
        return 0;
    if (!p->seccomp_listener || strlen(p->seccomp_listener) >= sizeof addr.sun_path)
        return pyrt_failx(c->sync_fd, "seccomp", EINVAL, "listenerPath: missing or too long");
    if (p->n_seccomp_state == 0 || p->n_seccomp_state > MAX_STATE_PIECES)
        return pyrt_failx(c->sync_fd, "seccomp", EINVAL, "container process state: %zu pieces",
                          p->n_seccomp_state);
    n = readlink("/proc/self", buf, sizeof buf - 1);
    if (n <= 0)
        return pyrt_fail(c->sync_fd, "seccomp", errno, "readlink /proc/self");
    buf[n] = '\0';
    c->host_pid = atoi(buf);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return pyrt_fail(c->sync_fd, "seccomp", errno, "socket for listenerPath");
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, p->seccomp_listener, strlen(p->seccomp_listener));
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int err = errno;
        close(fd);
        return pyrt_fail(c->sync_fd, "seccomp", err, "connect to listenerPath %s",
                         p->seccomp_listener);
    }
    c->listener_fd = fd;
    return 0;
}

/* One SCM_RIGHTS message: the JSON pieces with our pid between them, and the listener. */
static int send_listener(struct pyrt_ctx *c, int notify_fd)
{
    const struct pyrt_plan *p = c->plan;
    struct iovec iov[2 * MAX_STATE_PIECES];
    char pid[16];
    size_t i, niov = 0, total = 0, sent;
    ssize_t n;
    int pid_len;

    pid_len = snprintf(pid, sizeof pid, "%d", (int)c->host_pid);
    for (i = 0; i < p->n_seccomp_state; i++) {
        if (i > 0) {
            iov[niov].iov_base = pid;
            iov[niov++].iov_len = (size_t)pid_len;
        }
        iov[niov].iov_base = (void *)p->seccomp_state[i];
        iov[niov++].iov_len = strlen(p->seccomp_state[i]);
    }
    for (i = 0; i < niov; i++)
        total += iov[i].iov_len;
    n = pyrt_send_fd(c->listener_fd, notify_fd, iov, niov);
    if (n < 0)
        return pyrt_fail(c->sync_fd, "seccomp", errno, "send the listener to %s",
                         p->seccomp_listener);
    /* The fd went with the first byte; the rest of a short write goes without it. */
    for (sent = (size_t)n, i = 0; sent < total; ) {
        size_t off = sent;
        for (i = 0; i < niov && off >= iov[i].iov_len; i++)
            off -= iov[i].iov_len;
        do
            n = send(c->listener_fd, (char *)iov[i].iov_base + off, iov[i].iov_len - off,
                     MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            return pyrt_fail(c->sync_fd, "seccomp", n < 0 ? errno : EPIPE,
                             "send the container process state to %s", p->seccomp_listener);
        sent += (size_t)n;
    }
    return 0;
}

int pyrt_load_seccomp(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    struct sock_fprog prog;
    long rc;
    int ret = 0;

    if (!p->seccomp_bpf)
        return 0;
    prog.len = (unsigned short)(p->seccomp_bpf_len / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)p->seccomp_bpf;
    rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned long)p->seccomp_flags, &prog);
    if (rc < 0)
        return pyrt_fail(c->sync_fd, "seccomp", errno, "load the filter (%u instructions, flags %#x)",
                         (unsigned)prog.len, (unsigned)p->seccomp_flags);
    if (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        ret = send_listener(c, (int)rc);
        close((int)rc);
        close(c->listener_fd);
        c->listener_fd = -1;
    }
    return ret;
}
