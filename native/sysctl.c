/*
 * sysctl.c - linux.sysctl, written by init after pivot_root through a private
 * procfs (procfs.c; CVE-2025-52881, docs/security.md), so that no mount made by
 * the container (a tmpfs over /proc/sys/..., a bind of a file of the rootfs or
 * of another procfs file over the key) can redirect the write.  Python checked
 * that each key belongs to a namespace of the container's own (plan/sysctl.py).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pyrt.h"

int pyrt_set_sysctls(struct pyrt_ctx *c)
{
    char rel[4096];
    size_t i;
    int proc_fd, rc = 0;

    if (c->plan->n_sysctls == 0)
        return 0;
    proc_fd = pyrt_private_proc(c, "sysctl");
    if (proc_fd < 0)
        return -1;
    for (i = 0; rc == 0 && i < c->plan->n_sysctls; i++) {
        const struct pyrt_sysctl *s = &c->plan->sysctls[i];

        if (strlen(s->path) + 5 > sizeof rel) {
            rc = pyrt_failx(c->sync_fd, "sysctl", ENAMETOOLONG, "%s: name too long", s->path);
            break;
        }
        memcpy(rel, "sys/", 4);
        strcpy(rel + 4, s->path);
        rc = pyrt_proc_write(c, proc_fd, "sysctl", rel, s->value);
    }
    close(proc_fd);
    return rc;
}
