/*
 * sysctl.c - linux.sysctl, written by init after pivot_root through a private
 * procfs (REFERENCE §5, CVE-2025-52881): a fresh, detached proc instance
 * (fsopen/fsmount), or a detached clone of the container's /proc mount, that
 * no mount made by the container can cover.  Both the proc root and every
 * file opened below it are checked with fstatfs to be procfs, and lookups stay
 * beneath it (no symlinks, no mount crossings).  Python checked that each key
 * belongs to a namespace of the container's own (plan/sysctl.py).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>
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

/* A proc mount that belongs to nobody's mount tree. */
static int private_proc(struct pyrt_ctx *c)
{
    int fsfd, mfd;

    fsfd = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
    if (fsfd >= 0) {
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0) {
            mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID |
                               MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
            if (mfd >= 0) {
                close(fsfd);
                return mfd;
            }
        }
        close(fsfd);
    }
    /* e.g. a proc instance would be "too revealing": clone the container's own /proc */
    mfd = (int)syscall(SYS_open_tree, c->root_fd, "proc", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (mfd < 0)
        return pyrt_fail(c->sync_fd, "sysctl", errno, "private procfs (fsmount, open_tree /proc)");
    return mfd;
}

static int write_one(struct pyrt_ctx *c, int proc_fd, const struct pyrt_sysctl *s)
{
    char rel[4096];
    struct open_how how;
    size_t len = strlen(s->value);
    ssize_t n;
    int fd;

    if (strlen(s->path) + 5 > sizeof rel)
        return pyrt_failx(c->sync_fd, "sysctl", ENAMETOOLONG, "%s: name too long", s->path);
    memcpy(rel, "sys/", 4);
    strcpy(rel + 4, s->path);
    memset(&how, 0, sizeof how);
    how.flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    fd = (int)syscall(SYS_openat2, proc_fd, rel, &how, sizeof how);
    if (fd < 0)
        return pyrt_fail(c->sync_fd, "sysctl", errno, "open /proc/%s", rel);
    if (!is_proc(fd)) {
        close(fd);
        return pyrt_failx(c->sync_fd, "sysctl", EXDEV, "/proc/%s is not on procfs; refusing", rel);
    }
    n = write(fd, s->value, len);
    if (n != (ssize_t)len) {
        int err = n < 0 ? errno : EIO;
        close(fd);
        return pyrt_fail(c->sync_fd, "sysctl", err, "write \"%s\" to /proc/%s", s->value, rel);
    }
    close(fd);
    return 0;
}

int pyrt_set_sysctls(struct pyrt_ctx *c)
{
    size_t i;
    int proc_fd, rc = 0;

    if (c->plan->n_sysctls == 0)
        return 0;
    proc_fd = private_proc(c);
    if (proc_fd < 0)
        return -1;
    if (!is_proc(proc_fd)) {
        close(proc_fd);
        return pyrt_failx(c->sync_fd, "sysctl", EXDEV, "private /proc is not procfs; refusing");
    }
    for (i = 0; rc == 0 && i < c->plan->n_sysctls; i++)
        rc = write_one(c, proc_fd, &c->plan->sysctls[i]);
    close(proc_fd);
    return rc;
}
