/*
 * safepath.c - resolve and create paths inside the container root without
 * ever leaving it (docs/security.md, CVE-2021-30465 / CVE-2024-45310).
 *
 * Every lookup is openat2(root_fd, path, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS):
 * "..", absolute symlinks and symlinks pointing outside are all clamped to the
 * root, and /proc magic links are refused.  Callers mount onto
 * /proc/self/fd/N of the returned O_PATH fd, never onto a path string that
 * could be swapped in between.  These helpers return -1 with errno set and do
 * not report: the caller knows what the path was for.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrt.h"

void pyrt_fdpath(char buf[PYRT_FDPATH_LEN], int fd)
{
    snprintf(buf, PYRT_FDPATH_LEN, "/proc/self/fd/%d", fd);
}

static int open_how_in_root(int root_fd, const char *path, uint64_t flags, uint64_t resolve)
{
    struct open_how how;
    const char *rel = path;
    long fd;
    int tries = 0;

    while (*rel == '/')
        rel++;
    if (*rel == '\0')
        rel = ".";
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve;
    /* EAGAIN: a concurrent rename raced a ".." lookup; the kernel asks to retry. */
    do
        fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
    while (fd < 0 && (errno == EAGAIN || errno == EINTR) && ++tries < 32);
    return (int)fd;
}

int pyrt_open_in_root(int root_fd, const char *path, uint64_t resolve)
{
    return open_how_in_root(root_fd, path, O_PATH | O_CLOEXEC, resolve);
}

int pyrt_open_read_in_root(int32_t root_fd, const char *path)
{
    int fd = open_how_in_root(root_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);

    return fd < 0 ? -errno : fd;
}

static int create_last(int parent_fd, const char *name, int kind)
{
    int fd;

    if (kind == PYRT_DEST_FILE) {
        fd = openat(parent_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
        return fd < 0 && errno != EEXIST ? -1 : 0;
    }
    if (mkdirat(parent_fd, name, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

#define MKPATH_MAX_LINKS 40 /* as the kernel's own limit on nested symlinks */

/*
 * `link` (named `name` in the directory `dir`, whose path is `dir_path`, `dir_len` bytes)
 * is a dangling symlink: write into `next` the path that continues through its target,
 * then `rest`.  Return 0, or -1 with errno (EINVAL: not a symlink).
 */
static int through_link(int dir, const char *name, const char *dir_path, size_t dir_len,
                        const char *rest, char next[PATH_MAX])
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(dir, name, target, sizeof target - 1);
    int len;

    if (n < 0)
        return -1;
    target[n] = '\0';
    if (target[0] == '/')
        len = snprintf(next, PATH_MAX, "%s/%s", target, rest);
    else
        len = snprintf(next, PATH_MAX, "/%.*s/%s/%s", (int)dir_len, dir_path, target, rest);
    if (len < 0 || len >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/*
 * One pass of pyrt_mkpath_in_root over `path`.  Returns the fd, -1 with errno, or -2
 * when a component is a dangling symlink: `next` then holds the path through its target.
 */
static int mkpath_pass(int root_fd, const char *path, int kind, uint64_t resolve,
                       int dangling, char next[PATH_MAX])
{
    char buf[PATH_MAX];
    char *p, *end;
    int parent, fd, saved;

    fd = pyrt_open_in_root(root_fd, path, resolve);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    if (strlen(path) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(buf, path);
    parent = pyrt_open_in_root(root_fd, "/", resolve);
    if (parent < 0)
        return -1;
    p = buf;
    while (*p) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        end = strchr(p, '/');
        if (end)
            *end = '\0';
        fd = pyrt_open_in_root(root_fd, buf, resolve);
        if (fd < 0 && errno == ENOENT) {
            int last = end == NULL || end[1 + strspn(end + 1, "/")] == '\0';
            if (create_last(parent, p, last ? kind : PYRT_DEST_DIR) < 0)
                fd = -1;
            else
                fd = pyrt_open_in_root(root_fd, buf, resolve);
            /* still missing after creating it: a symlink to nowhere, which runc follows */
            if (fd < 0 && errno == ENOENT && dangling && !(resolve & RESOLVE_NO_SYMLINKS) &&
                through_link(parent, p, buf, (size_t)(p - buf), end ? path + (end - buf) + 1 : "",
                             next) == 0) {
                close(parent);
                return -2;
            }
            if (fd < 0 && errno == EINVAL)
                errno = ENOENT;
        }
        saved = errno;
        close(parent);
        if (fd < 0) {
            errno = saved;
            return -1;
        }
        parent = fd;
        if (!end)
            break;
        *end = '/';
        p = end + 1;
    }
    return parent;
}

/*
 * Open `path` inside the root, creating missing components one at a time:
 * directories, and the last one as `kind`.  Each parent is itself opened
 * inside the root, so a symlink met on the way is followed within the root.
 * With `dangling`, a dangling symlink is followed too, as runc does for mount
 * destinations and device paths: its target is created, resolved inside the
 * root like any other path (absolute targets from the root, ".." clamped at
 * it), unless `resolve` forbids symlinks.  Without, creation fails with EEXIST
 * and the re-lookup then reports ENOENT (runc's MkdirAll of a cwd fails so).
 */
int pyrt_mkpath_in_root(int root_fd, const char *path, int kind, uint64_t resolve, int dangling)
{
    char a[PATH_MAX], b[PATH_MAX];
    const char *cur = path;
    int hops, fd;

    for (hops = 0; hops <= MKPATH_MAX_LINKS; hops++) {
        fd = mkpath_pass(root_fd, cur, kind, resolve, dangling, hops % 2 ? a : b);
        if (fd != -2)
            return fd;
        cur = hops % 2 ? a : b;
    }
    errno = ELOOP;
    return -1;
}

/*
 * Open the parent directory of `path` inside the root (creating it if
 * missing, through dangling symlinks too) and copy the last component into `name`.
 */
int pyrt_open_parent(int root_fd, const char *path, char *name, size_t name_len)
{
    char dir[PATH_MAX];
    const char *slash;
    size_t len = strlen(path);

    while (len > 1 && path[len - 1] == '/')
        len--;
    if (len >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, len);
    dir[len] = '\0';
    slash = strrchr(dir, '/');
    slash = slash ? slash + 1 : dir;
    if (strlen(slash) >= name_len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(name, slash);
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        errno = EINVAL;
        return -1;
    }
    dir[slash - dir] = '\0';
    return pyrt_mkpath_in_root(root_fd, dir[0] ? dir : "/", PYRT_DEST_DIR, 0, 1);
}

/*
 * Flags a bind remount must keep: in a user namespace the kernel refuses to
 * clear nosuid/nodev/noexec/atime settings locked by a more privileged mount.
 */
unsigned long pyrt_locked_flags(int fd)
{
    struct statvfs sv;
    unsigned long f = 0;

    if (fstatvfs(fd, &sv) < 0)
        return 0;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}
