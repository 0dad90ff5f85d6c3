/*
 * cgroup.c - putting stage1, and so init, into the cgroups the caller made
 * (mechanism only: which cgroups, and every limit in them, are Python's business,
 * pyruntime/cgroups/).
 *
 * v1 hierarchies: stage1 writes itself to each `tasks` file in the plan first
 * thing, before it joins any namespace (after a setns into a user namespace it
 * could no longer write host files); init, cloned later, starts in them.
 * cgroup2 (v2, or a hybrid host's unified hierarchy): init is cloned straight
 * into its cgroup with clone3 CLONE_INTO_CGROUP (spawn.c); only if the kernel
 * refuses that does stage1 move itself (cgroup_fd_procs) before cloning.
 * Either way init runs no instruction outside its cgroups.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "pyrt.h"

static int join(const char *path, int sync_fd)
{
    ssize_t n;
    int fd;

    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return pyrt_fail(sync_fd, "cgroup", errno, "open %s", path);
    do
        n = write(fd, "0", 1); /* 0: the writing process (thread, for `tasks`) */
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        int err = n < 0 ? errno : EIO;

        close(fd);
        return pyrt_fail(sync_fd, "cgroup", err, "join %s", path);
    }
    close(fd);
    return 0;
}

int pyrt_join_cgroup2_fallback(const struct pyrt_plan *p, int sync_fd)
{
    if (!p->cgroup_fd_procs)
        return pyrt_fail(sync_fd, "cgroup", EINVAL, "no cgroup.procs to fall back to");
    return join(p->cgroup_fd_procs, sync_fd);
}

int pyrt_join_cgroups(const struct pyrt_plan *p, int sync_fd)
{
    size_t i;

    for (i = 0; i < p->n_cgroup_procs; i++)
        if (join(p->cgroup_procs[i], sync_fd) < 0)
            return -1;
    return 0;
}
