/*
 * rootfs.c - the container root: propagation, binding the rootfs onto itself,
 * pivot_root (or MS_MOVE + chroot), masked and read-only paths, read-only /.
 *
 * All of it runs in init's mount namespace: a new one, or one joined by path
 * (set up the same way, as runc does), or, when the config has none, the
 * runtime's own.  Then, as runc does, the root is entered with chroot, not
 * pivot_root; unlike runc, the propagation of the runtime's / is left alone
 * (Python refuses rootfsPropagation, masked and read-only paths there) and
 * only the rootfs bind is made private, so the container's mounts below it
 * stay out of other namespaces (the bind itself reaches the peers of a shared
 * parent mount, and leaves them with it).  They outlive the container, as with runc, unless setup
 * fails: then init detaches them (pyrt_rootfs_cleanup).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pyrt.h"

/* 1 when init has a mount namespace of its own, new or joined by path. */
int pyrt_own_mount_ns(const struct pyrt_plan *p)
{
    size_t i;

    if (p->clone_flags & CLONE_NEWNS)
        return 1;
    for (i = 0; i < p->n_joins; i++)
        if (p->joins[i].type == CLONE_NEWNS)
            return 1;
    return 0;
}

int pyrt_prepare_root(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    int fd = c->sync_fd;
    int own_ns = pyrt_own_mount_ns(p);

    if (own_ns && p->root_propagation_pre && mount("", "/", NULL, p->root_propagation_pre, NULL) < 0)
        return pyrt_fail(fd, "rootfs", errno, "set propagation of / to %#lx", p->root_propagation_pre);
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return pyrt_fail(fd, "rootfs", errno, "bind %s onto itself", p->rootfs);
    c->root_fd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root_fd < 0)
        return pyrt_fail(fd, "rootfs", errno, "open %s", p->rootfs);
    c->root_bound = 1;
    if (!own_ns && mount(NULL, p->rootfs, NULL, MS_PRIVATE | MS_REC, NULL) < 0)
        return pyrt_fail(fd, "rootfs", errno, "make the bind of %s private", p->rootfs);
    return 0;
}

/* Setup failed in the runtime's own mount namespace: take the container's mounts away. */
void pyrt_rootfs_cleanup(struct pyrt_ctx *c)
{
    char rp[PYRT_FDPATH_LEN];

    if (!c->root_bound || pyrt_own_mount_ns(c->plan) || c->root_fd < 0)
        return;
    pyrt_fdpath(rp, c->root_fd);
    umount2(rp, MNT_DETACH); /* best effort: the error being reported is the first one */
}

/*
 * pivot_root(".", ".") stacks the old root on top of the new one.  As runc
 * does, step into the old root by fd (not "."; that would name the new root,
 * and making it rslave would undo the container's own propagation settings),
 * make it rslave so its unmount cannot propagate to the host, detach it.
 */
static int pivot(struct pyrt_ctx *c)
{
    int fd = c->sync_fd;
    int old_fd, rc = 0;

    old_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (old_fd < 0)
        return pyrt_fail(fd, "pivot_root", errno, "open old /");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        rc = pyrt_fail(fd, "pivot_root", errno, "pivot_root %s", c->plan->rootfs);
    else if (fchdir(old_fd) < 0)
        rc = pyrt_fail(fd, "pivot_root", errno, "chdir old root");
    else if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        rc = pyrt_fail(fd, "pivot_root", errno, "make old root rslave");
    else if (umount2(".", MNT_DETACH) < 0)
        rc = pyrt_fail(fd, "pivot_root", errno, "detach old root");
    close(old_fd);
    return rc;
}

/* After this, c->root_fd is "/" of the container and the host root is gone. */
int pyrt_pivot_root(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    int fd = c->sync_fd;

    if (fchdir(c->root_fd) < 0)
        return pyrt_fail(fd, "pivot_root", errno, "chdir %s", p->rootfs);
    if (!pyrt_own_mount_ns(p)) {
        /* pivot_root or MS_MOVE would replace the runtime's own / */
        if (chroot(".") < 0)
            return pyrt_fail(fd, "pivot_root", errno, "chroot %s (no mount namespace)", p->rootfs);
    } else if (p->no_pivot) {
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
            return pyrt_fail(fd, "pivot_root", errno, "move %s onto / (no_pivot)", p->rootfs);
        if (chroot(".") < 0)
            return pyrt_fail(fd, "pivot_root", errno, "chroot %s (no_pivot)", p->rootfs);
    } else if (pivot(c) < 0) {
        return -1;
    }
    if (chdir("/") < 0)
        return pyrt_fail(fd, "pivot_root", errno, "chdir /");
    close(c->root_fd);
    c->root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root_fd < 0)
        return pyrt_fail(fd, "pivot_root", errno, "open new /");
    return 0;
}

int pyrt_root_propagation_post(struct pyrt_ctx *c)
{
    unsigned long f = c->plan->root_propagation_post;

    if (f && pyrt_own_mount_ns(c->plan) && mount("", "/", NULL, f, NULL) < 0)
        return pyrt_fail(c->sync_fd, "rootfs", errno, "set propagation of / to %#lx", f);
    return 0;
}

/* /dev/null of the container, checked by fd to be the real 1:3 (CVE-2025-31133). */
static int open_dev_null(struct pyrt_ctx *c)
{
    struct stat st;
    int nfd = pyrt_open_in_root(c->root_fd, "/dev/null", 0);

    if (nfd < 0)
        return pyrt_fail(c->sync_fd, "masked paths", errno, "open /dev/null");
    if (fstat(nfd, &st) < 0) {
        int err = errno;
        close(nfd);
        return pyrt_fail(c->sync_fd, "masked paths", err, "stat /dev/null");
    }
    if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3) {
        close(nfd);
        return pyrt_failx(c->sync_fd, "masked paths", EPERM,
                          "/dev/null is not the 1:3 character device; refusing to mask with it");
    }
    return nfd;
}

static int mask_one(struct pyrt_ctx *c, const char *path, int *null_fd)
{
    char tp[PYRT_FDPATH_LEN], np[PYRT_FDPATH_LEN];
    struct stat st;
    int tfd, rc = 0;

    tfd = pyrt_open_in_root(c->root_fd, path, 0);
    if (tfd < 0)
        return errno == ENOENT ? 0 : pyrt_fail(c->sync_fd, "masked paths", errno, "open %s", path);
    pyrt_fdpath(tp, tfd);
    if (fstat(tfd, &st) < 0) {
        rc = pyrt_fail(c->sync_fd, "masked paths", errno, "stat %s", path);
    } else if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", tp, "tmpfs", MS_RDONLY, NULL) < 0)
            rc = pyrt_fail(c->sync_fd, "masked paths", errno, "mask directory %s with tmpfs", path);
    } else {
        if (*null_fd < 0)
            *null_fd = open_dev_null(c);
        if (*null_fd < 0) {
            rc = -1;
        } else {
            pyrt_fdpath(np, *null_fd);
            if (mount(np, tp, NULL, MS_BIND, NULL) < 0)
                rc = pyrt_fail(c->sync_fd, "masked paths", errno, "bind /dev/null over %s", path);
        }
    }
    close(tfd);
    return rc;
}

int pyrt_mask_paths(struct pyrt_ctx *c)
{
    int null_fd = -1, rc = 0;
    size_t i;

    for (i = 0; rc == 0 && i < c->plan->n_masked; i++)
        rc = mask_one(c, c->plan->masked_paths[i], &null_fd);
    if (null_fd >= 0)
        close(null_fd);
    return rc;
}

static int readonly_one(struct pyrt_ctx *c, const char *path)
{
    char tp[PYRT_FDPATH_LEN];
    int tfd;

    tfd = pyrt_open_in_root(c->root_fd, path, 0);
    if (tfd < 0)
        return errno == ENOENT ? 0 : pyrt_fail(c->sync_fd, "readonly paths", errno, "open %s", path);
    pyrt_fdpath(tp, tfd);
    if (mount(tp, tp, NULL, MS_BIND | MS_REC, NULL) < 0) {
        int err = errno;
        close(tfd);
        return pyrt_fail(c->sync_fd, "readonly paths", err, "bind %s onto itself", path);
    }
    close(tfd);
    /* Re-open: the old fd still names the directory under the new mount. */
    tfd = pyrt_open_in_root(c->root_fd, path, 0);
    if (tfd < 0)
        return pyrt_fail(c->sync_fd, "readonly paths", errno, "reopen %s", path);
    pyrt_fdpath(tp, tfd);
    if (mount(NULL, tp, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | pyrt_locked_flags(tfd), NULL) < 0) {
        int err = errno;
        close(tfd);
        return pyrt_fail(c->sync_fd, "readonly paths", err, "remount %s read-only", path);
    }
    close(tfd);
    return 0;
}

int pyrt_readonly_paths(struct pyrt_ctx *c)
{
    size_t i;

    for (i = 0; i < c->plan->n_readonly; i++)
        if (readonly_one(c, c->plan->readonly_paths[i]) < 0)
            return -1;
    return 0;
}

int pyrt_readonly_root(struct pyrt_ctx *c)
{
    unsigned long keep = pyrt_locked_flags(c->root_fd);

    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
        return pyrt_fail(c->sync_fd, "readonly root", errno, "remount / read-only");
    return 0;
}

static int is_dev_null(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && major(st->st_rdev) == 1 && minor(st->st_rdev) == 3;
}

/*
 * The caller's stdio may be the host's /dev/null (conmon gives a detached container
 * that).  As runc does after pivot_root, such fds are pointed at the container's own
 * /dev/null (checked to be the real 1:3), in the same access mode: nothing of the host's
 * /dev stays open in the container, and CRIU can dump it (a file outside the
 * container's mounts cannot be).
 */
int pyrt_reopen_dev_null(struct pyrt_ctx *c)
{
    char path[PYRT_FDPATH_LEN];
    struct stat st, own;
    int pfd = -1, fd, flags, i, err;

    for (i = 0; i < 3; i++) {
        if (fstat(i, &st) < 0 || !is_dev_null(&st))
            continue; /* closed, or not /dev/null */
        if (pfd < 0) {
            pfd = pyrt_open_in_root(c->root_fd, "/dev/null", 0);
            if (pfd < 0)
                return 0; /* the container has no /dev/null: its stdio stays as given */
            if (fstat(pfd, &own) < 0 || !is_dev_null(&own)) {
                close(pfd);
                return 0;
            }
        }
        if (st.st_dev == own.st_dev && st.st_ino == own.st_ino)
            continue;
        flags = fcntl(i, F_GETFL);
        pyrt_fdpath(path, pfd);
        fd = flags < 0 ? -1 : open(path, (flags & O_ACCMODE) | O_CLOEXEC);
        if (fd < 0 || dup2(fd, i) < 0) {
            err = errno;
            if (fd >= 0)
                close(fd);
            close(pfd);
            return pyrt_fail(c->sync_fd, "stdio", err, "reopen fd %d on the container's /dev/null", i);
        }
        close(fd);
    }
    if (pfd >= 0)
        close(pfd);
    return 0;
}
