/*
 * mountsrc.c - bind-mount sources are host paths: stage1 opens them (O_PATH), with
 * the runtime's credentials, before init does anything, and hands the fds to init
 * in the plan's mount order.  So a source only host root can reach (a 0700 root
 * directory, or anything below one) is mountable into a container whose root is
 * an unprivileged mapped user.
 *
 * stage1 opens them inside init's mount namespace (setns, when init has a new
 * one): bind(2) takes its source from the caller's own mount namespace only, and
 * the copies of the mounts there stay locked for the container as the kernel made
 * them.  They travel over a SOCK_SEQPACKET pair made before init's clone, in
 * batches of PYRT_SRC_BATCH (SCM_RIGHTS, received close-on-exec); init takes them
 * one by one as its mounts need them and closes the rest and the socket when the
 * mounts are done.  Idmapped binds carry their tree instead (mountattr.c).
 *
 * When a user namespace is joined by path, stage1 is that namespace's root by then:
 * a helper forked before the joins stays the runtime (pyrt_source_helper_*), as
 * runc's stage-0 does, and does the opening in stage1's stead.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyrt.h"

int pyrt_wants_source_fd(const struct pyrt_mount *m)
{
    return (m->flags & MS_BIND) && m->idmap_tree_fd < 0;
}

int pyrt_needs_source_fds(const struct pyrt_plan *p)
{
    size_t i;

    if (!p->rootfs)
        return 0;
    /* setns(CLONE_NEWNS) needs CAP_SYS_CHROOT here: a rootless caller has nothing to add */
    if ((pyrt_own_mount_ns(p) || pyrt_source_helper_needed(p)) && geteuid() != 0)
        return 0;
    for (i = 0; i < p->n_mounts; i++)
        if (pyrt_wants_source_fd(&p->mounts[i]))
            return 1;
    return 0;
}

static ssize_t send_batch(int sock, const int *fds, int n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * PYRT_SRC_BATCH)];
        struct cmsghdr align;
    } u;
    struct msghdr msg;
    struct cmsghdr *cm;
    struct iovec iov;
    char b = 's';
    ssize_t r;

    memset(&u, 0, sizeof u);
    memset(&msg, 0, sizeof msg);
    iov.iov_base = &b;
    iov.iov_len = 1;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n);
    do
        r = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r;
}

static void close_all(int *fds, int n)
{
    int i;

    for (i = 0; i < n; i++)
        close(fds[i]);
}

int pyrt_source_helper_needed(const struct pyrt_plan *p)
{
    size_t i;

    for (i = 0; i < p->n_joins; i++)
        if (p->joins[i].type == CLONE_NEWUSER)
            return 1;
    return 0;
}

/*
 * stage1 or its helper, init cloned but not released: open and send every source,
 * from init's mount namespace when `join` (else the caller is in it already).
 * Reports its failure.
 */
int pyrt_send_mount_sources(const struct pyrt_plan *p, int proc_fd, pid_t pid, int sock, int join)
{
    int fds[PYRT_SRC_BATCH];
    int n = 0, fd, err;
    char rel[64];
    size_t i;

    if (join) {
        snprintf(rel, sizeof rel, "%d/ns/mnt", (int)pid);
        fd = openat(proc_fd, rel, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return pyrt_fail_pid(p->sync_fd, pid, "mount", errno,
                                 "open the container's mount namespace (/proc/%s)", rel);
        if (setns(fd, CLONE_NEWNS) < 0) {
            err = errno;
            close(fd);
            return pyrt_fail_pid(p->sync_fd, pid, "mount", err,
                                 "join the container's mount namespace to open bind sources");
        }
        close(fd);
    }
    for (i = 0; i < p->n_mounts; i++) {
        const struct pyrt_mount *m = &p->mounts[i];
        if (!pyrt_wants_source_fd(m))
            continue;
        fd = open(m->source, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            err = errno;
            close_all(fds, n);
            return pyrt_fail_pid(p->sync_fd, pid, "mount", err, "bind source %s for %s",
                                 m->source, m->destination);
        }
        fds[n++] = fd;
        if (n == PYRT_SRC_BATCH) {
            if (send_batch(sock, fds, n) < 0) {
                err = errno;
                close_all(fds, n);
                return pyrt_fail_pid(p->sync_fd, pid, "mount", err, "send bind sources to init");
            }
            close_all(fds, n);
            n = 0;
        }
    }
    if (n > 0) {
        if (send_batch(sock, fds, n) < 0) {
            err = errno;
            close_all(fds, n);
            return pyrt_fail_pid(p->sync_fd, pid, "mount", err, "send bind sources to init");
        }
        close_all(fds, n);
    }
    return 0;
}

/*
 * stage1, before any join: fork the helper, which waits for init's pid on the pipe
 * whose write end goes to *go_fd.  Returns its pid, or -1 (reported).
 */
pid_t pyrt_source_helper_start(const struct pyrt_plan *p, int proc_fd, int sock, int *go_fd)
{
    int go[2], err;
    int32_t pid;
    ssize_t n;
    pid_t h;

    if (pipe2(go, O_CLOEXEC) < 0)
        return pyrt_fail(p->sync_fd, "stage1", errno, "pipe2 for the bind sources helper");
    h = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
    if (h < 0) {
        err = errno;
        close(go[0]);
        close(go[1]);
        return pyrt_fail(p->sync_fd, "stage1", err, "fork the bind sources helper");
    }
    if (h == 0) {
        close(go[1]);
        do
            n = read(go[0], &pid, sizeof pid);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof pid)
            _exit(1); /* stage1 gave up, and said why */
        _exit(pyrt_send_mount_sources(p, proc_fd, pid, sock, pyrt_own_mount_ns(p)) < 0 ? 1 : 0);
    }
    close(go[0]);
    *go_fd = go[1];
    return h;
}

/* stage1: the helper is not needed any more (stage1 failed before cloning init). */
void pyrt_source_helper_abort(pid_t helper, int go_fd)
{
    close(go_fd); /* EOF: it exits */
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* stage1: give the helper init's pid and wait for it.  0, or -1 (reported). */
int pyrt_source_helper_finish(const struct pyrt_plan *p, pid_t helper, int go_fd, pid_t pid)
{
    int32_t v = pid;
    ssize_t n;
    int status;

    do
        n = write(go_fd, &v, sizeof v);
    while (n < 0 && errno == EINTR);
    close(go_fd);
    while (waitpid(helper, &status, 0) < 0)
        if (errno != EINTR)
            return pyrt_fail_pid(p->sync_fd, pid, "mount", errno, "wait for the bind sources helper");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (n == (ssize_t)sizeof v && WIFEXITED(status) && WEXITSTATUS(status) == 1)
        return -1; /* it reported */
    return pyrt_fail_pid(p->sync_fd, pid, "mount", 0, "the bind sources helper failed (status %#x)",
                         (unsigned)status);
}

/* init: the source fd of the next bind mount, `m` (the caller closes it), or -1 with errno. */
int pyrt_next_mount_source(struct pyrt_ctx *c, const struct pyrt_mount *m)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * PYRT_SRC_BATCH)];
        struct cmsghdr align;
    } u;
    struct msghdr msg;
    struct cmsghdr *cm;
    struct iovec iov;
    char b;
    ssize_t r;

    if (c->src_next < c->src_n)
        return c->src_fds[c->src_next++];
    if (c->src_sock < 0) /* none from stage1 (pyrt_needs_source_fds) */
        return open(m->source, O_PATH | O_CLOEXEC);
    memset(&u, 0, sizeof u);
    memset(&msg, 0, sizeof msg);
    iov.iov_base = &b;
    iov.iov_len = 1;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    do
        r = recvmsg(c->src_sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        if (r == 0)
            errno = EPIPE;
        return -1;
    }
    cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
        (msg.msg_flags & MSG_CTRUNC)) {
        errno = EPROTO;
        return -1;
    }
    c->src_n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    memcpy(c->src_fds, CMSG_DATA(cm), sizeof(int) * (size_t)c->src_n);
    c->src_next = 0;
    if (c->src_n <= 0) {
        errno = EPROTO;
        return -1;
    }
    return c->src_fds[c->src_next++];
}

/* init, after the mounts (done or failed): nothing of this reaches the container. */
void pyrt_close_mount_sources(struct pyrt_ctx *c)
{
    while (c->src_next < c->src_n)
        close(c->src_fds[c->src_next++]);
    if (c->src_sock >= 0)
        close(c->src_sock);
    c->src_sock = -1;
}
