/*
 * exesafe.c - the container must never execute the runtime's own binary
 * (CVE-2019-5736).
 *
 * init is a fork of the Python runtime: until execve, /proc/self/exe is the
 * host's python executable.  If the container's program is /proc/self/exe,
 * a link to it, or a script whose #! interpreter (at any depth) is one, the
 * kernel would map the host binary into the container; with an ELF
 * interpreter taken from the container's filesystem, code of the image then
 * runs with /proc/self/exe naming the host binary, and can keep a handle to
 * it and rewrite it once it is no longer busy.  So init notes the identity
 * (st_dev, st_ino) of its executable before touching the rootfs, and right
 * before execve refuses a program or interpreter with that identity.  stat()
 * follows symlinks and /proc magic links, so every spelling is caught.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyrt.h"

#define MAX_INTERP_DEPTH 5 /* the kernel stops at 4 (BINPRM_MAX_RECURSION) */

int pyrt_note_runtime_exe(struct pyrt_ctx *c)
{
    struct stat st;

    if (stat("/proc/self/exe", &st) < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "stat /proc/self/exe");
    c->self_dev = st.st_dev;
    c->self_ino = st.st_ino;
    c->self_known = 1;
    return 0;
}

/* The #! interpreter of `path` into `out`; 0 if it has none (or cannot be read). */
static int interpreter(const char *path, char *out, size_t len)
{
    char buf[256];
    ssize_t n;
    size_t i, j;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 3 || buf[0] != '#' || buf[1] != '!')
        return 0;
    buf[n] = '\0';
    for (i = 2; buf[i] == ' ' || buf[i] == '\t'; i++)
        ;
    for (j = i; buf[j] && buf[j] != ' ' && buf[j] != '\t' && buf[j] != '\n'; j++)
        ;
    if (j == i || j - i >= len)
        return 0;
    memcpy(out, buf + i, j - i);
    out[j - i] = '\0';
    return 1;
}

int pyrt_refuse_runtime_exe(struct pyrt_ctx *c)
{
    char path[sizeof c->exe];
    struct stat st;
    int depth;

    if (!c->self_known || !c->exe[0])
        return 0;
    memcpy(path, c->exe, sizeof path);
    for (depth = 0; depth < MAX_INTERP_DEPTH; depth++) {
        if (stat(path, &st) < 0)
            return 0; /* execve reports it */
        if (st.st_dev == c->self_dev && st.st_ino == c->self_ino)
            return pyrt_failx(c->sync_fd, "exec", EPERM,
                              "refusing to run %s%s%s: it is the runtime's own executable "
                              "(CVE-2019-5736)", c->exe, depth ? " through #! interpreter " : "",
                              depth ? path : "");
        if (!interpreter(path, path, sizeof path))
            return 0;
    }
    return 0;
}
