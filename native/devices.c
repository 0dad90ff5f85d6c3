/*
 * devices.c - device nodes (mknod, or a bind of the host's node when mknod is
 * not allowed, e.g. in a user namespace) and symlinks such as /dev/fd.
 * Each is created at a parent directory opened inside the rootfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pyrt.h"

/* Create an empty file at parent/name and bind the host's node (same path) onto it. */
static int bind_host_node(struct pyrt_ctx *c, const struct pyrt_device *d, int pfd, const char *name)
{
    char hp[PYRT_FDPATH_LEN], tp[PYRT_FDPATH_LEN];
    struct stat st;
    int hfd, tfd, rc = 0;

    hfd = open(d->path, O_PATH | O_CLOEXEC);
    if (hfd < 0)
        return pyrt_fail(c->sync_fd, "device", errno, "open host node %s", d->path);
    if (fstat(hfd, &st) < 0) {
        rc = pyrt_fail(c->sync_fd, "device", errno, "stat host node %s", d->path);
        goto out_host;
    }
    if ((st.st_mode & S_IFMT) != (d->mode & S_IFMT) ||
        (!S_ISFIFO(st.st_mode) && st.st_rdev != makedev(d->major, d->minor))) {
        rc = pyrt_failx(c->sync_fd, "device", EINVAL, "host node %s is not device %u:%u",
                        d->path, d->major, d->minor);
        goto out_host;
    }
    tfd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (tfd < 0) {
        rc = pyrt_fail(c->sync_fd, "device", errno, "create mount point %s", d->path);
        goto out_host;
    }
    close(tfd);
    tfd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0) {
        rc = pyrt_fail(c->sync_fd, "device", errno, "open mount point %s", d->path);
        goto out_host;
    }
    pyrt_fdpath(hp, hfd);
    pyrt_fdpath(tp, tfd);
    if (mount(hp, tp, NULL, MS_BIND, NULL) < 0)
        rc = pyrt_fail(c->sync_fd, "device", errno, "bind host node %s", d->path);
    close(tfd);
out_host:
    close(hfd);
    return rc;
}

static int make_device(struct pyrt_ctx *c, const struct pyrt_device *d)
{
    char name[NAME_MAX + 1];
    int pfd, rc = 0;

    pfd = pyrt_open_parent(c->root_fd, d->path, name, sizeof name);
    if (pfd < 0)
        return pyrt_fail(c->sync_fd, "device", errno, "parent directory of %s", d->path);
    /* An existing node is replaced, as runc does. */
    if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT) {
        rc = pyrt_fail(c->sync_fd, "device", errno, "remove existing %s", d->path);
    } else if (d->bind_from_host) {
        rc = bind_host_node(c, d, pfd, name);
    } else if (mknodat(pfd, name, d->mode, makedev(d->major, d->minor)) < 0) {
        rc = pyrt_fail(c->sync_fd, "device", errno, "mknod %s (%u:%u, mode %#o)",
                       d->path, d->major, d->minor, d->mode);
    } else if (fchownat(pfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = pyrt_fail(c->sync_fd, "device", errno, "chown %s to %u:%u", d->path, d->uid, d->gid);
    }
    close(pfd);
    return rc;
}

int pyrt_make_devices(struct pyrt_ctx *c)
{
    mode_t old = umask(0); /* the plan's mode is exact */
    size_t i;
    int rc = 0;

    for (i = 0; rc == 0 && i < c->plan->n_devices; i++)
        rc = make_device(c, &c->plan->devices[i]);
    umask(old);
    return rc;
}

int pyrt_make_symlinks(struct pyrt_ctx *c)
{
    char name[NAME_MAX + 1];
    size_t i;
    int pfd;

    for (i = 0; i < c->plan->n_symlinks; i++) {
        const struct pyrt_symlink *s = &c->plan->symlinks[i];
        pfd = pyrt_open_parent(c->root_fd, s->linkpath, name, sizeof name);
        if (pfd < 0)
            return pyrt_fail(c->sync_fd, "symlink", errno, "parent directory of %s", s->linkpath);
        if (symlinkat(s->target, pfd, name) < 0 && errno != EEXIST) {
            int err = errno;
            close(pfd);
            return pyrt_fail(c->sync_fd, "symlink", err, "%s -> %s", s->linkpath, s->target);
        }
        close(pfd);
    }
    return 0;
}
