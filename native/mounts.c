/*
 * mounts.c - the config's mounts, in order, onto destinations resolved inside
 * the rootfs (safepath.c).  Bind mounts take a second, remount pass for their
 * attribute flags; propagation is applied last, to the new mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "pyrt.h"

#define ATTR_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | \
                    MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)
#define ATIME_FLAGS (MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

/* proc and sysfs must never land on a symlink (CVE-2023-27561). */
static int no_symlinks_for(const char *fstype)
{
    return fstype && (strcmp(fstype, "proc") == 0 || strcmp(fstype, "sysfs") == 0);
}

/* Apply the bind mount's attributes; keep flags the kernel has locked. */
static int remount_bind(struct pyrt_ctx *c, const struct pyrt_mount *m, int tfd)
{
    char tp[PYRT_FDPATH_LEN];
    unsigned long flags = (m->flags & ~MS_REC) | MS_BIND | MS_REMOUNT;
    unsigned long locked;

    pyrt_fdpath(tp, tfd);
    if (mount(NULL, tp, NULL, flags, NULL) == 0)
        return 0;
    if (errno != EPERM)
        return pyrt_fail(c->sync_fd, "mount", errno, "remount bind %s with flags %#lx",
                         m->destination, m->flags);
    locked = pyrt_locked_flags(tfd);
    if (m->flags & ATIME_FLAGS)
        locked &= ~ATIME_FLAGS;
    if (mount(NULL, tp, NULL, flags | locked, NULL) < 0)
        return pyrt_fail(c->sync_fd, "mount", errno, "remount bind %s with flags %#lx",
                         m->destination, flags | locked);
    return 0;
}

static int do_mount(struct pyrt_ctx *c, const struct pyrt_mount *m, uint64_t resolve)
{
    char sp[PYRT_FDPATH_LEN], tp[PYRT_FDPATH_LEN];
    const char *fstype = m->fstype ? m->fstype : "";
    int bind = (m->flags & MS_BIND) != 0;
    int sfd = -1, tfd, rc = 0, err;

    if (bind) {
        sfd = open(m->source, O_PATH | O_CLOEXEC);
        if (sfd < 0)
            return pyrt_fail(c->sync_fd, "mount", errno, "bind source %s for %s",
                             m->source, m->destination);
    }
    tfd = pyrt_mkpath_in_root(c->root_fd, m->destination, m->dest_kind, resolve);
    if (tfd < 0) {
        err = errno;
        if (sfd >= 0)
            close(sfd);
        if (resolve && err == ELOOP)
            return pyrt_failx(c->sync_fd, "mount", ELOOP,
                              "%s (%s): destination is or passes through a symlink; refusing",
                              m->destination, fstype);
        return pyrt_fail(c->sync_fd, "mount", err, "destination %s", m->destination);
    }
    pyrt_fdpath(tp, tfd);
    if (bind) {
        pyrt_fdpath(sp, sfd);
        if (mount(sp, tp, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
            rc = pyrt_fail(c->sync_fd, "mount", errno, "bind %s on %s", m->source, m->destination);
        close(sfd);
    } else if (mount(m->source, tp, fstype, m->flags, m->data) < 0) {
        rc = pyrt_fail(c->sync_fd, "mount", errno, "%s on %s (%s)",
                       m->source ? m->source : "none", m->destination, fstype);
    }
    close(tfd);
    return rc;
}

static int mount_one(struct pyrt_ctx *c, const struct pyrt_mount *m)
{
    char tp[PYRT_FDPATH_LEN];
    uint64_t resolve = no_symlinks_for(m->fstype) && !(m->flags & MS_BIND) ? RESOLVE_NO_SYMLINKS : 0;
    int bind_attrs = (m->flags & MS_BIND) && (m->flags & ATTR_FLAGS);
    int tfd, rc = 0;

    if (do_mount(c, m, resolve) < 0)
        return -1;
    if (!bind_attrs && !m->propagation)
        return 0;
    /* Re-open: the fd used above names the directory under the new mount. */
    tfd = pyrt_open_in_root(c->root_fd, m->destination, resolve);
    if (tfd < 0)
        return pyrt_fail(c->sync_fd, "mount", errno, "reopen %s", m->destination);
    if (bind_attrs)
        rc = remount_bind(c, m, tfd);
    pyrt_fdpath(tp, tfd);
    if (rc == 0 && m->propagation && mount(NULL, tp, NULL, m->propagation, NULL) < 0)
        rc = pyrt_fail(c->sync_fd, "mount", errno, "set propagation %#lx on %s",
                       m->propagation, m->destination);
    close(tfd);
    return rc;
}

int pyrt_do_mounts(struct pyrt_ctx *c)
{
    size_t i;

    for (i = 0; i < c->plan->n_mounts; i++)
        if (mount_one(c, &c->plan->mounts[i]) < 0)
            return -1;
    return 0;
}
