/*
 * copyup.c - the tmpcopyup mount option: copy what a tmpfs is mounted over
 * into it.  The source is a directory of the (untrusted) rootfs, opened
 * before the mount; nothing in it is followed: symlinks are copied as
 * symlinks, every open is O_NOFOLLOW relative to a directory fd.  Modes,
 * owners and times are kept.  No malloc: one getdents buffer per level.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrt.h"

#define COPYUP_MAX_DEPTH 32

static int copy_file(int sdir, int ddir, const char *name, const struct stat *st)
{
    int in, out, err = 0;
    ssize_t n;

    in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return -1;
    out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 07777);
    if (out < 0) {
        err = errno;
        close(in);
        errno = err;
        return -1;
    }
    do
        n = sendfile(out, in, NULL, 1 << 20);
    while (n > 0 || (n < 0 && errno == EINTR));
    if (n < 0)
        err = errno;
    close(in);
    close(out);
    errno = err;
    return err ? -1 : 0;
}

static int copy_dir(int sdir, int ddir, int depth);

static int copy_entry(int sdir, int ddir, const char *name, int depth)
{
    char target[PATH_MAX];
    struct timespec times[2];
    struct stat st;
    ssize_t n;
    int rc = 0;

    if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    switch (st.st_mode & S_IFMT) {
    case S_IFDIR: {
        int s, d;
        if (depth >= COPYUP_MAX_DEPTH) {
            errno = ELOOP;
            return -1;
        }
        if (mkdirat(ddir, name, st.st_mode & 07777) < 0 && errno != EEXIST)
            return -1;
        s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s < 0)
            return -1;
        d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0) {
            close(s);
            return -1;
        }
        rc = copy_dir(s, d, depth + 1);
        close(s);
        close(d);
        break;
    }
    case S_IFREG:
        rc = copy_file(sdir, ddir, name, &st);
        break;
    case S_IFLNK:
        n = readlinkat(sdir, name, target, sizeof target - 1);
        if (n < 0)
            return -1;
        target[n] = '\0';
        rc = symlinkat(target, ddir, name);
        break;
    default: /* fifo, socket, device node */
        rc = mknodat(ddir, name, st.st_mode, st.st_rdev);
        break;
    }
    if (rc < 0)
        return -1;
    if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL)
        return -1;
    /* chown clears set-id bits: put the mode back (symlinks have none to keep) */
    if (!S_ISLNK(st.st_mode) && fchmodat(ddir, name, st.st_mode & 07777, 0) < 0)
        return -1;
    times[0] = st.st_atim;
    times[1] = st.st_mtim;
    utimensat(ddir, name, times, AT_SYMLINK_NOFOLLOW);
    return 0;
}

static int copy_dir(int sdir, int ddir, int depth)
{
    char buf[2048];
    long n, off;

    while ((n = syscall(SYS_getdents64, sdir, buf, sizeof buf)) > 0) {
        for (off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            if (copy_entry(sdir, ddir, d->d_name, depth) < 0)
                return -1;
        }
    }
    return n < 0 ? -1 : 0;
}

/* src_fd: O_PATH fd of the directory before the mount; dst_fd: of the new mount's root.
   The root's own mode is the caller's (mounts.c: keep_dir_mode, or the tmpfs's mode=). */
int pyrt_copy_up(int src_fd, int dst_fd)
{
    char sp[PYRT_FDPATH_LEN];
    int s, rc;

    pyrt_fdpath(sp, src_fd);
    s = open(sp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s < 0)
        return -1;
    rc = copy_dir(s, dst_fd, 0);
    close(s);
    return rc;
}
