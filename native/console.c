/*
 * console.c - process.terminal: a pty from the container's own devpts, its
 * peer as init's stdio, controlling terminal and /dev/console, its master sent
 * to the console socket (docs/process-chain.md).
 *
 * The master comes from /dev/pts/ptmx opened inside the container root and
 * checked to be devpts's 5:2; the peer comes from TIOCGPTPEER, never from a
 * /dev/pts/N path lookup, and /dev/console is bound from the peer by fd
 * (CVE-2025-52565).  The caller connected the console socket (plan->console_fd);
 * init sends the master with one SCM_RIGHTS message whose payload is the
 * master's name, as runc does, then closes both.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <termios.h>
#include <unistd.h>

#include "pyrt.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

#define MASTER_NAME "/dev/ptmx"

/* /dev/pts/ptmx of the container, opened read-write without leaving its root. */
static int open_ptmx(struct pyrt_ctx *c, int root_fd)
{
    struct open_how how;
    struct statfs sfs;
    struct stat st;
    long fd;

    memset(&how, 0, sizeof how);
    how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    do
        fd = syscall(SYS_openat2, root_fd, "dev/pts/ptmx", &how, sizeof how);
    while (fd < 0 && (errno == EAGAIN || errno == EINTR));
    if (fd < 0)
        return pyrt_fail(c->sync_fd, "console", errno, "open /dev/pts/ptmx in the container");
    if (fstatfs((int)fd, &sfs) < 0 || sfs.f_type != DEVPTS_SUPER_MAGIC ||
        fstat((int)fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(5, 2)) {
        close((int)fd);
        return pyrt_failx(c->sync_fd, "console", EXDEV,
                          "/dev/pts/ptmx is not the ptmx of a devpts mount");
    }
    return (int)fd;
}

/* An empty file at /dev/console (inside the root) with the peer bound onto it. */
static int mount_console(struct pyrt_ctx *c, int root_fd, int peer)
{
    char src[PYRT_FDPATH_LEN], dst[PYRT_FDPATH_LEN];
    int tfd, rc = 0;

    tfd = pyrt_mkpath_in_root(root_fd, "/dev/console", PYRT_DEST_FILE, RESOLVE_NO_SYMLINKS, 0);
    if (tfd < 0)
        return pyrt_fail(c->sync_fd, "console", errno, "create /dev/console");
    pyrt_fdpath(src, peer);
    pyrt_fdpath(dst, tfd);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        rc = pyrt_fail(c->sync_fd, "console", errno, "bind the pty onto /dev/console");
    close(tfd);
    return rc;
}

static int send_master(struct pyrt_ctx *c, int sock, int master)
{
    char name[] = MASTER_NAME;
    struct iovec iov = { .iov_base = name, .iov_len = sizeof name - 1 };

    if (pyrt_send_fd(sock, master, &iov, 1) < 0)
        return pyrt_fail(c->sync_fd, "console", errno, "send the pty master to the console socket");
    return 0;
}

/* The peer becomes 0, 1, 2 and the controlling terminal of init's session (init.c). */
static int take_peer(struct pyrt_ctx *c, int peer)
{
    int fd;

    for (fd = 0; fd < 3; fd++)
        if (dup3(peer, fd, 0) < 0)
            return pyrt_fail(c->sync_fd, "console", errno, "make the pty fd %d", fd);
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        return pyrt_fail(c->sync_fd, "console", errno, "make the pty the controlling terminal");
    return 0;
}

int pyrt_setup_console(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    struct winsize ws;
    int root_fd = c->root_fd, own_root = -1;
    int master = -1, peer = -1, unlock = 0, rc = -1;

    if (p->console_fd < 0)
        return 0;
    if (root_fd < 0) { /* exec into a running container: its root is ours already */
        own_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (own_root < 0)
            return pyrt_fail(c->sync_fd, "console", errno, "open /");
        root_fd = own_root;
    }
    master = open_ptmx(c, root_fd);
    if (master < 0)
        goto out;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) {
        pyrt_fail(c->sync_fd, "console", errno, "unlockpt");
        goto out;
    }
    peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (peer < 0) {
        pyrt_fail(c->sync_fd, "console", errno, "open the pty peer (TIOCGPTPEER)");
        goto out;
    }
    if (p->console_rows || p->console_cols) {
        memset(&ws, 0, sizeof ws);
        ws.ws_row = p->console_rows;
        ws.ws_col = p->console_cols;
        if (ioctl(master, TIOCSWINSZ, &ws) < 0) {
            pyrt_fail(c->sync_fd, "console", errno, "set the window size %ux%u",
                      (unsigned)p->console_cols, (unsigned)p->console_rows);
            goto out;
        }
    }
    if (p->rootfs && mount_console(c, root_fd, peer) < 0)
        goto out;
    if (send_master(c, p->console_fd, master) < 0 || take_peer(c, peer) < 0)
        goto out;
    rc = 0;
out:
    if (peer >= 0)
        close(peer);
    if (master >= 0)
        close(master);
    if (own_root >= 0)
        close(own_root);
    close(p->console_fd); /* the caller keeps its own copy; init needs it no more */
    return rc;
}
