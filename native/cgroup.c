/*
 * cgroup.c - putting stage1, and so init, into the cgroups the caller made
 * (mechanism only: which cgroups, and every limit in them, are Python's business,
 * pyruntime/cgroups/).
 *
 * v1 (and hybrid): stage1 writes itself to every cgroup.procs file in the plan
 * first thing, before it joins any namespace (after a setns into a user
 * namespace it could no longer write host files); init, cloned later, starts
 * in them.  v2: init is cloned straight into its cgroup with clone3
 * CLONE_INTO_CGROUP (spawn.c); only if the kernel refuses that does stage1
 * move itself before cloning.  Either way init runs no instruction outside its
 * cgroups, and a new cgroup namespace is rooted at the container's cgroup.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "pyrt.h"

int pyrt_join_cgroups(const struct pyrt_plan *p, int sync_fd)
{
    size_t i;

    for (i = 0; i < p->n_cgroup_procs; i++) {
        const char *path = p->cgroup_procs[i];
        ssize_t n;
        int fd;

        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return pyrt_fail(sync_fd, "cgroup", errno, "open %s", path);
        do
            n = write(fd, "0", 1); /* 0: the writing process */
        while (n < 0 && errno == EINTR);
        if (n != 1) {
            int err = n < 0 ? errno : EIO;

            close(fd);
            return pyrt_fail(sync_fd, "cgroup", err, "join %s", path);
        }
        close(fd);
    }
    return 0;
}
