/*
 * procfs.c - every write init makes to /proc after the container's mounts
 * exist (sysctls) goes through a private procfs (docs/security.md,
 * CVE-2025-52881).  The container's /proc is the container's: config.json can
 * bind any file, even another procfs file such as the host's
 * /proc/sys/kernel/core_pattern, over /proc/sys/<key>, and an fstatfs check
 * on a file opened by path passes for such a bind.
 *
 * So: a fresh, detached proc instance (fsopen/fsmount), or a non-recursive
 * clone of the container's /proc mount (no submount comes along); lookups stay
 * beneath it (no symlinks, no mount crossings); its root and every file
 * written are checked with fstatfs to be procfs.  No mount made by the
 * container can cover a file of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "pyrt.h"

static int is_proc(int fd)
{
    struct statfs sf;

    return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

int pyrt_private_proc(struct pyrt_ctx *c, const char *step)
{
    int fsfd, mfd = -1;

    fsfd = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
    if (fsfd >= 0) {
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
            mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID |
                               MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        close(fsfd);
    }
    /* e.g. in a user namespace a new proc instance is "too revealing" once
       paths are masked: clone the container's own /proc mount, alone */
    if (mfd < 0)
        mfd = (int)syscall(SYS_open_tree, c->root_fd >= 0 ? c->root_fd : AT_FDCWD,
                           c->root_fd >= 0 ? "proc" : "/proc",
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
    if (mfd < 0)
        return pyrt_fail(c->sync_fd, step, errno, "private procfs (fsmount, open_tree /proc)");
    if (!is_proc(mfd)) {
        close(mfd);
        return pyrt_failx(c->sync_fd, step, EXDEV, "private /proc is not procfs; refusing");
    }
    return mfd;
}

int pyrt_proc_write(struct pyrt_ctx *c, int proc_fd, const char *step, const char *rel,
                    const char *value)
{
    struct open_how how;
    size_t len = strlen(value);
    ssize_t n;
    int fd;

    memset(&how, 0, sizeof how);
    how.flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    fd = (int)syscall(SYS_openat2, proc_fd, rel, &how, sizeof how);
    if (fd < 0)
        return pyrt_fail(c->sync_fd, step, errno, "open /proc/%s", rel);
    if (!is_proc(fd)) {
        close(fd);
        return pyrt_failx(c->sync_fd, step, EXDEV, "/proc/%s is not on procfs; refusing", rel);
    }
    n = write(fd, value, len);
    if (n != (ssize_t)len) {
        int err = n < 0 ? errno : EIO;
        close(fd);
        return pyrt_fail(c->sync_fd, step, err, "write \"%s\" to /proc/%s", value, rel);
    }
    close(fd);
    return 0;
}

/* Our pid as that proc instance numbers it: "self" without following it. */
int pyrt_proc_self(struct pyrt_ctx *c, int proc_fd, const char *step, char *buf, size_t len)
{
    ssize_t n = readlinkat(proc_fd, "self", buf, len - 1);
    char *end;

    if (n <= 0)
        return pyrt_fail(c->sync_fd, step, n < 0 ? errno : EIO, "readlink /proc/self");
    buf[n] = '\0';
    if (strtol(buf, &end, 10) <= 0 || *end != '\0')
        return pyrt_failx(c->sync_fd, step, EXDEV, "/proc/self is \"%s\"; refusing", buf);
    return 0;
}
