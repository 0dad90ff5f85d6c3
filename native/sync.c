/*
 * sync.c - messages from stage1 and init to the caller over the SOCK_SEQPACKET
 * sync socket: one struct pyrt_msg per packet.  Send errors are ignored by the
 * failure helpers (the caller may already be gone); pyrt_send reports them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pyrt.h"

int pyrt_send(int fd, int32_t type, int32_t pid)
{
    struct pyrt_msg m;
    ssize_t n;

    memset(&m, 0, sizeof m);
    m.type = type;
    m.pid = pid;
    do
        n = send(fd, &m, sizeof m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof m ? 0 : -1;
}

/*
 * The same with write(2), which any program needs and so any seccomp profile
 * allows, unlike sendto(2).  A caller that is gone raises SIGPIPE: init dies,
 * as it would by its lifeline.
 */
int pyrt_send_write(int fd, int32_t type)
{
    struct pyrt_msg m;
    ssize_t n;

    memset(&m, 0, sizeof m);
    m.type = type;
    do
        n = write(fd, &m, sizeof m);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof m ? 0 : -1;
}

/* Keep messages on one line whatever the paths contain. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* init's first failure while held (pyrt_hold_failures); one process each: no locking */
static struct pyrt_msg held;
static int held_fd = -1, holding;

static void deliver(int fd, const struct pyrt_msg *m)
{
    ssize_t n;

    do
        n = send(fd, m, sizeof *m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    /* after start: the exec fifo (exec.c); or a seccomp filter denies send */
    if (n < 0 && errno != EPIPE && errno != ECONNRESET)
        do
            n = write(fd, m, sizeof *m);
        while (n < 0 && errno == EINTR);
}

void pyrt_hold_failures(void)
{
    holding = 1;
    held_fd = -1;
}

void pyrt_send_held_failure(void)
{
    holding = 0;
    if (held_fd >= 0)
        deliver(held_fd, &held);
    held_fd = -1;
}

static int vfail(int fd, int32_t pid, const char *step, int err, int with_str,
                 const char *fmt, va_list ap)
{
    struct pyrt_msg m;
    size_t len;

    memset(&m, 0, sizeof m);
    m.type = PYRT_MSG_ERROR;
    m.pid = pid;
    m.err = err;
    snprintf(m.step, sizeof m.step, "%s", step);
    vsnprintf(m.text, sizeof m.text, fmt, ap);
    if (with_str && err != 0) {
        /* strerrordesc_np: untranslated, no allocation (unlike strerror).  Lower-cased
           as Go prints errno (runc's texts, which engines match: "no such file or
           directory", "permission denied"). */
        const char *desc = strerrordesc_np(err);
        len = strlen(m.text);
        if (desc) {
            snprintf(m.text + len, sizeof m.text - len, ": %s", desc);
            if (len + 2 < sizeof m.text)
                m.text[len + 2] = (char)tolower((unsigned char)m.text[len + 2]);
        } else {
            snprintf(m.text + len, sizeof m.text - len, ": errno %d", err);
        }
    }
    one_line(m.step);
    one_line(m.text);
    if (!holding) {
        deliver(fd, &m);
    } else if (held_fd < 0) { /* the first failure is the one to report */
        held = m;
        held_fd = fd;
    }
    return -1;
}

int pyrt_fail(int fd, const char *step, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(fd, 0, step, err, 1, fmt, ap);
    va_end(ap);
    return -1;
}

int pyrt_failx(int fd, const char *step, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(fd, 0, step, err, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int pyrt_fail_pid(int fd, int32_t pid, const char *step, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(fd, pid, step, err, 1, fmt, ap);
    va_end(ap);
    return -1;
}

/* One sendmsg carrying `iov` and `fd` (SCM_RIGHTS); returns bytes sent or -1 (errno). */
ssize_t pyrt_send_fd(int sock, int fd, struct iovec *iov, size_t niov)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg;
    struct cmsghdr *cm;
    ssize_t n;

    memset(&u, 0, sizeof u);
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = niov;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}
