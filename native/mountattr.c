/*
 * mountattr.c - the new mount API pieces mounts.c uses: recursive mount
 * attributes (rro, rnosuid, ... via mount_setattr(AT_RECURSIVE)), idmapped
 * bind mounts (the caller: a user namespace fd with the mount's mappings, then
 * open_tree(OPEN_TREE_CLONE) + MOUNT_ATTR_IDMAP; init: move_mount into place).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyrt.h"

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

int pyrt_setattr(int fd, int recursive, uint64_t set, uint64_t clr, int userns_fd)
{
    struct mount_attr attr;

    memset(&attr, 0, sizeof attr);
    attr.attr_set = set;
    attr.attr_clr = clr;
    if (userns_fd >= 0)
        attr.userns_fd = (uint64_t)userns_fd;
    return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
                        &attr, sizeof attr);
}

int pyrt_idmapped_tree(const char *source, int32_t recursive, int32_t idmap_recursive,
                       int32_t userns_fd)
{
    int tree, err;

    tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                        (recursive ? AT_RECURSIVE : 0));
    if (tree < 0)
        return -errno;
    if (pyrt_setattr(tree, idmap_recursive, MOUNT_ATTR_IDMAP, 0, userns_fd) < 0) {
        err = errno;
        close(tree);
        return -err;
    }
    return tree;
}

/* Attach a detached tree (from the caller) at tfd. */
int pyrt_attach_tree(int tree_fd, int tfd)
{
    return (int)syscall(SYS_move_mount, tree_fd, "", tfd, "",
                        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int write_file(const char *path, const char *text)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, text, len);
    close(fd);
    if (n != (ssize_t)len) {
        if (n >= 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

/*
 * A child unshares a user namespace and waits; we write its maps, open its
 * /proc/PID/ns/user, and end it.  The namespace lives on through the fd.
 */
int pyrt_userns_fd(const char *uid_map, const char *gid_map)
{
    char path[64];
    int go[2], fd = -1, err = 0, status;
    pid_t pid;
    char b;

    if (pipe2(go, O_CLOEXEC) < 0)
        return -errno;
    pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);
    if (pid < 0) {
        err = errno;
        close(go[0]);
        close(go[1]);
        return -err;
    }
    if (pid == 0) {
        close(go[1]);
        while (read(go[0], &b, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(go[0]);
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    write_file(path, "deny"); /* not needed as root; harmless */
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (uid_map && write_file(path, uid_map) < 0)
        err = errno;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    if (!err && gid_map && write_file(path, gid_map) < 0)
        err = errno;
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    if (!err && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        err = errno;
    close(go[1]); /* EOF: the child exits */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return err ? -err : fd;
}
