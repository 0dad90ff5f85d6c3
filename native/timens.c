/*
 * timens.c - linux.timeOffsets.  A time namespace's offsets can only be
 * written before any process lives in it, so stage1 unshares it (stage1 stays
 * outside; only its children enter), writes /proc/self/timens_offsets, and
 * then clones init without CLONE_NEWTIME: init starts in that namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "pyrt.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

int pyrt_setup_timens(const struct pyrt_plan *p, int sync_fd)
{
    size_t len;
    ssize_t n;
    int fd;

    if (!p->timens_offsets)
        return 0;
    if (unshare(CLONE_NEWTIME) < 0)
        return pyrt_fail(sync_fd, "time namespace", errno, "unshare(CLONE_NEWTIME)");
    fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return pyrt_fail(sync_fd, "time namespace", errno, "open /proc/self/timens_offsets");
    len = strlen(p->timens_offsets);
    n = write(fd, p->timens_offsets, len);
    if (n != (ssize_t)len) {
        int err = n < 0 ? errno : EIO;
        close(fd);
        return pyrt_fail(sync_fd, "time namespace", err, "write offsets \"%.100s\"",
                         p->timens_offsets);
    }
    close(fd);
    return 0;
}
