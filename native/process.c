/*
 * process.c - container-wide attributes set by init before READY: host and
 * domain name, the loopback interface, rlimits, oom_score_adj.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pyrt.h"

int pyrt_set_names(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;

    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
        return pyrt_fail(c->sync_fd, "hostname", errno, "sethostname \"%s\"", p->hostname);
    if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
        return pyrt_fail(c->sync_fd, "domainname", errno, "setdomainname \"%s\"", p->domainname);
    return 0;
}

int pyrt_loopback_up(struct pyrt_ctx *c)
{
    struct ifreq ifr;
    int s, rc = 0;

    if (!c->plan->loopback_up)
        return 0;
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return pyrt_fail(c->sync_fd, "loopback", errno, "socket");
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        rc = pyrt_fail(c->sync_fd, "loopback", errno, "get flags of lo");
    } else {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            rc = pyrt_fail(c->sync_fd, "loopback", errno, "bring lo up");
    }
    close(s);
    return rc;
}

int pyrt_set_rlimits(struct pyrt_ctx *c)
{
    size_t i;

    for (i = 0; i < c->plan->n_rlimits; i++) {
        const struct pyrt_rlimit *r = &c->plan->rlimits[i];
        struct rlimit rl = { .rlim_cur = r->soft, .rlim_max = r->hard };
        if (setrlimit(r->resource, &rl) < 0)
            return pyrt_fail(c->sync_fd, "rlimit", errno, "%s soft %llu hard %llu",
                             r->name ? r->name : "?", (unsigned long long)r->soft,
                             (unsigned long long)r->hard);
    }
    return 0;
}

/* Written through a private procfs (procfs.c): config.json can bind another
   procfs file over the container's /proc/1/oom_score_adj (CVE-2025-52881). */
int pyrt_set_oom_score_adj(struct pyrt_ctx *c)
{
    char self[24], rel[48], buf[16];
    int proc_fd, rc;

    if (!c->plan->set_oom_score_adj)
        return 0;
    proc_fd = pyrt_private_proc(c, "oom_score_adj");
    if (proc_fd < 0)
        return -1;
    rc = pyrt_proc_self(c, proc_fd, "oom_score_adj", self, sizeof self);
    if (rc == 0) {
        snprintf(rel, sizeof rel, "%s/oom_score_adj", self);
        snprintf(buf, sizeof buf, "%d", (int)c->plan->oom_score_adj);
        rc = pyrt_proc_write(c, proc_fd, "oom_score_adj", rel, buf);
    }
    close(proc_fd);
    return rc;
}
