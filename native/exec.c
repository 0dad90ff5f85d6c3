/*
 * exec.c - the last mile: the working directory, resolving argv[0] (before
 * READY, so `create` fails for a missing binary), waiting on the exec fifo,
 * fd hygiene and execve.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrt.h"

/*
 * chdir(cwd) and check that the result is reachable from our root: a cwd
 * reached through a leaked fd's /proc/self/fd/N link would not be
 * (CVE-2024-21626); glibc's getcwd reports that as ENOENT.
 *
 * As runc: first as the runtime's user; only if that was refused (EACCES,
 * EPERM), again as the container's (after_creds), so a cwd either can reach works.
 */
int pyrt_enter_cwd(struct pyrt_ctx *c, int after_creds)
{
    char buf[PATH_MAX];
    const char *cwd = c->plan->cwd;

    if (!cwd || (after_creds && !c->cwd_pending))
        return 0;
    c->cwd_pending = 0;
    if (chdir(cwd) < 0) {
        if (!after_creds && (errno == EACCES || errno == EPERM)) {
            c->cwd_pending = 1;
            return 0;
        }
        return pyrt_fail(c->sync_fd, "chdir", errno, "cwd %s", cwd);
    }
    if (getcwd(buf, sizeof buf) == NULL)
        return pyrt_fail(c->sync_fd, "chdir", errno, "cwd %s is outside the container root", cwd);
    return 0;
}

/* A missing cwd is made inside the rootfs (0755, confined like a mount destination), as runc does. */
int pyrt_make_cwd(struct pyrt_ctx *c)
{
    int fd;

    if (!c->plan->mkdir_cwd || !c->plan->cwd)
        return 0;
    fd = pyrt_mkpath_in_root(c->root_fd, c->plan->cwd, PYRT_DEST_DIR, 0, 0);
    if (fd < 0)
        return pyrt_fail(c->sync_fd, "chdir", errno, "create cwd %s", c->plan->cwd);
    close(fd);
    return 0;
}

static int is_executable(const char *path, int *err)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        *err = errno;
        return 0;
    }
    if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
        *err = EACCES;
        return 0;
    }
    return 1;
}

/*
 * Like Go's exec.LookPath, which runc uses: argv[0] with a '/' is taken as is.  The
 * messages are runc's after the step ("exec: "), as engines map them to exit codes:
 * "executable file not found in $PATH", "no such file or directory" (127),
 * "permission denied" (126).
 */
int pyrt_resolve_exe(struct pyrt_ctx *c)
{
    const char *name = c->plan->argv[0];
    const char *dir, *end;
    size_t dlen, nlen;
    int err = 0;

    if (!name || !*name)
        return pyrt_failx(c->sync_fd, "exec", EINVAL, "empty argv[0]");
    nlen = strlen(name);
    if (strchr(name, '/')) {
        if (nlen >= sizeof c->exe)
            return pyrt_failx(c->sync_fd, "exec", ENAMETOOLONG, "\"%s\": file name too long", name);
        if (!is_executable(name, &err)) {
            if (err == EACCES) /* a directory, no x bit: Go's LookPath says just this */
                return pyrt_failx(c->sync_fd, "exec", err, "\"%s\": permission denied", name);
            return pyrt_fail(c->sync_fd, "exec", err, "\"%s\": stat %s", name, name);
        }
        memcpy(c->exe, name, nlen + 1);
        return 0;
    }
    for (dir = c->plan->path_search; dir; dir = *end ? end + 1 : NULL) {
        end = strchrnul(dir, ':');
        dlen = (size_t)(end - dir);
        if (dlen == 0) { /* an empty element means the current directory */
            dir = ".";
            dlen = 1;
        }
        if (dlen + 1 + nlen >= sizeof c->exe)
            continue;
        memcpy(c->exe, dir, dlen);
        c->exe[dlen] = '/';
        memcpy(c->exe + dlen + 1, name, nlen + 1);
        if (is_executable(c->exe, &err))
            return 0;
    }
    c->exe[0] = '\0';
    return pyrt_failx(c->sync_fd, "exec", ENOENT,
                      "\"%s\": executable file not found in $PATH", name);
}

/*
 * Before READY: the fifo must be reopenable through /proc/self/fd (the
 * container needs its /proc).  With no reader yet, O_NONBLOCK gives ENXIO.
 */
int pyrt_check_fifo(struct pyrt_ctx *c)
{
    char fp[PYRT_FDPATH_LEN];
    int fd;

    if (c->fifo_fd < 0)
        return 0;
    pyrt_fdpath(fp, c->fifo_fd);
    fd = open(fp, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    else if (errno != ENXIO)
        return pyrt_fail(c->sync_fd, "exec fifo", errno, "reopen %s via %s", c->plan->exec_fifo, fp);
    return 0;
}

/*
 * Blocks until `start` opens the fifo for reading.  The write end then replaces
 * the sync socket as the error channel: a failure from here to execve is written
 * to it as one struct pyrt_msg (atomic: smaller than PIPE_BUF), and a successful
 * execve closes it (O_CLOEXEC), which `start` reads as EOF with no data.  So
 * `start` returns only once the user's program runs, or with the init's error.
 */
int pyrt_wait_fifo(struct pyrt_ctx *c)
{
    char fp[PYRT_FDPATH_LEN];
    int fd;

    if (c->fifo_fd < 0)
        return 0;
    pyrt_fdpath(fp, c->fifo_fd);
    do
        fd = open(fp, O_WRONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return pyrt_fail(c->sync_fd, "exec fifo", errno, "open %s for writing", c->plan->exec_fifo);
    close(c->fifo_fd);
    c->fifo_fd = -1;
    close(c->sync_fd); /* the caller of `create` is gone or no longer listening */
    c->sync_fd = fd;
    return 0;
}

/* close_range() fallback: mark every fd >= first close-on-exec. */
static int cloexec_from_proc(struct pyrt_ctx *c, int first)
{
    char buf[4096];
    long n, off;
    int dfd;

    dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return pyrt_fail(c->sync_fd, "fds", errno, "open /proc/self/fd");
    while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
        for (off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            int fd = atoi(d->d_name); /* "." and ".." give 0 */
            off += d->d_reclen;
            if (fd >= first && fd != dfd)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    close(dfd);
    if (n < 0)
        return pyrt_fail(c->sync_fd, "fds", errno, "read /proc/self/fd");
    return 0;
}

/*
 * Nothing but 0..2 and the preserved fds may survive execve (CVE-2024-21626).
 * Runs before the seccomp filter is loaded; the fds still to be opened after it
 * (the exec fifo's write end) are O_CLOEXEC.
 */
int pyrt_prepare_fds(struct pyrt_ctx *c)
{
    int first = 3 + (c->plan->preserve_fds > 0 ? c->plan->preserve_fds : 0);
    int fd, flags;

    if (c->root_fd >= 0) {
        close(c->root_fd);
        c->root_fd = -1;
    }
    /* ENOSYS, EINVAL: an older kernel; EPERM: a seccomp filter of our own caller's */
    if (close_range((unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        if (errno != ENOSYS && errno != EINVAL && errno != EPERM && errno != EACCES)
            return pyrt_fail(c->sync_fd, "fds", errno, "close_range(%d, CLOEXEC)", first);
        if (cloexec_from_proc(c, first) < 0)
            return -1;
    }
    for (fd = 3; fd < first; fd++) {
        /* never hand ours to the container: the sync socket, the exec fifo (still
           to be opened when the filter goes in before READY) */
        if (fd == c->sync_fd || fd == c->fifo_fd || fd == c->listener_fd)
            continue;
        flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
            return pyrt_fail(c->sync_fd, "fds", errno, "keep preserved fd %d", fd);
    }
    return 0;
}

void pyrt_exec(struct pyrt_ctx *c)
{
    execve(c->exe, (char *const *)c->plan->argv, (char *const *)c->plan->envp);
    pyrt_fail(c->sync_fd, "exec", errno, "exec %s", c->exe);
    _exit(127);
}
