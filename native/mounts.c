/*
 * mounts.c - the config's mounts, in order, onto destinations resolved inside
 * the rootfs (safepath.c).  Bind mounts take a second, remount pass for their
 * attribute flags; propagation and recursive attributes (mount_setattr) are
 * applied last, to the new mount.  Idmapped binds and tmpcopyup: mountattr.c,
 * copyup.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

/* tmpcopyup: under_fd still names the directory the new tmpfs now covers. */
static int copy_up(struct pyrt_ctx *c, const struct pyrt_mount *m, int under_fd, uint64_t resolve)
{
    char np[PYRT_FDPATH_LEN];
    int nfd, dfd, rc = 0;

    nfd = pyrt_open_in_root(c->root_fd, m->destination, resolve);
    if (nfd < 0)
        return pyrt_fail(c->sync_fd, "mount", errno, "tmpcopyup: reopen %s", m->destination);
    pyrt_fdpath(np, nfd);
    dfd = open(np, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(nfd);
    if (dfd < 0)
        return pyrt_fail(c->sync_fd, "mount", errno, "tmpcopyup: open %s", m->destination);
    if (pyrt_copy_up(under_fd, dfd) < 0)
        rc = pyrt_fail(c->sync_fd, "mount", errno, "tmpcopyup: copy into %s", m->destination);
    close(dfd);
    return rc;
}

/* keep_dir_mode: the new mount's root takes `mode`, the covered directory's (as runc does). */
static int chmod_mount_root(struct pyrt_ctx *c, const struct pyrt_mount *m, uint64_t resolve,
                            mode_t mode)
{
    char np[PYRT_FDPATH_LEN];
    int nfd, rc = 0;

    nfd = pyrt_open_in_root(c->root_fd, m->destination, resolve);
    if (nfd < 0)
        return pyrt_fail(c->sync_fd, "mount", errno, "reopen %s", m->destination);
    pyrt_fdpath(np, nfd);
    if (chmod(np, mode) < 0)
        rc = pyrt_fail(c->sync_fd, "mount", errno, "chmod %s to %#o (the mode of the directory "
                       "it covers)", m->destination, (unsigned)mode);
    close(nfd);
    return rc;
}

/*
 * Read-only at last, once the mode and tmpcopyup's copy are in: runc's order, and its
 * outcome (the mount read-only, its superblock left writable, as a bind remount does).
 */
static int remount_readonly(struct pyrt_ctx *c, const struct pyrt_mount *m, uint64_t resolve)
{
    int nfd, rc;

    nfd = pyrt_open_in_root(c->root_fd, m->destination, resolve);
    if (nfd < 0)
        return pyrt_fail(c->sync_fd, "mount", errno, "reopen %s", m->destination);
    rc = remount_bind(c, m, nfd);
    close(nfd);
    return rc;
}

/* The mode of the existing directory at the destination, or -1 (missing, not a directory). */
static int existing_dir_mode(struct pyrt_ctx *c, const struct pyrt_mount *m, uint64_t resolve)
{
    struct stat st;
    int fd = pyrt_open_in_root(c->root_fd, m->destination, resolve);
    int mode = -1;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        mode = (int)(st.st_mode & 07777);
    close(fd);
    return mode;
}

static int do_mount(struct pyrt_ctx *c, const struct pyrt_mount *m, uint64_t resolve)
{
    char sp[PYRT_FDPATH_LEN], tp[PYRT_FDPATH_LEN];
    const char *fstype = m->fstype ? m->fstype : "";
    int bind = (m->flags & MS_BIND) != 0;
    int sfd = -1, tfd, rc = 0, err;
    int dir_mode = m->keep_dir_mode && !bind ? existing_dir_mode(c, m, resolve) : -1;
    /* a tmpfs is written to after mount(2) (its mode, tmpcopyup): writable until then */
    int late_ro = !bind && (m->flags & MS_RDONLY) && strcmp(fstype, "tmpfs") == 0;

    if (pyrt_wants_source_fd(m)) {
        sfd = pyrt_next_mount_source(c, m); /* opened by stage1: mountsrc.c */
        if (sfd < 0)
            return pyrt_fail(c->sync_fd, "mount", errno, "bind source %s for %s",
                             m->source, m->destination);
    }
    tfd = pyrt_mkpath_in_root(c->root_fd, m->destination, m->dest_kind, resolve, 1);
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
    if (bind && m->idmap_tree_fd >= 0) {
        if (pyrt_attach_tree(m->idmap_tree_fd, tfd) < 0)
            rc = pyrt_fail(c->sync_fd, "mount", errno, "idmapped bind %s on %s",
                           m->source, m->destination);
    } else if (bind) {
        pyrt_fdpath(sp, sfd);
        if (mount(sp, tp, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
            rc = pyrt_fail(c->sync_fd, "mount", errno, "bind %s on %s", m->source, m->destination);
        close(sfd);
    } else if (mount(m->source, tp, fstype, late_ro ? m->flags & ~MS_RDONLY : m->flags,
                     m->data) < 0) {
        rc = pyrt_fail(c->sync_fd, "mount", errno, "%s on %s (%s)",
                       m->source ? m->source : "none", m->destination, fstype);
    } else {
        if (m->tmpcopyup)
            rc = copy_up(c, m, tfd, resolve);
        if (rc == 0 && dir_mode >= 0)
            rc = chmod_mount_root(c, m, resolve, (mode_t)dir_mode);
        if (rc == 0 && late_ro)
            rc = remount_readonly(c, m, resolve);
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
    if (!bind_attrs && !m->propagation && !m->rec_attr_set && !m->rec_attr_clr)
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
    if (rc == 0 && (m->rec_attr_set || m->rec_attr_clr) &&
        pyrt_setattr(tfd, 1, m->rec_attr_set, m->rec_attr_clr, -1) < 0)
        rc = pyrt_fail(c->sync_fd, "mount", errno,
                       "recursive attributes (set %#llx, clear %#llx) on %s",
                       (unsigned long long)m->rec_attr_set, (unsigned long long)m->rec_attr_clr,
                       m->destination);
    close(tfd);
    return rc;
}

int pyrt_do_mounts(struct pyrt_ctx *c)
{
    size_t i;

    int rc = 0;

    for (i = 0; rc == 0 && i < c->plan->n_mounts; i++)
        rc = mount_one(c, &c->plan->mounts[i]);
    pyrt_close_mount_sources(c);
    /* attached or not, the trees are not for the container */
    for (i = 0; i < c->plan->n_mounts; i++)
        if (c->plan->mounts[i].idmap_tree_fd >= 0)
            close(c->plan->mounts[i].idmap_tree_fd);
    return rc;
}
