/*
 * process.c - container-wide attributes set by init before READY: host and
 * domain name, the loopback interface, rlimits; and oom_score_adj, set by stage1.
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

/*
 * stage1, before it joins any namespace: its own /proc/self/oom_score_adj in the
 * host's procfs (proc_fd, opened before the joins; no container mount exists yet),
 * which init inherits at clone.  From inside a new user namespace init could not
 * write it (EACCES); runc's stage-0 writes it the same way.  A value below the
 * current one needs CAP_SYS_RESOURCE: without it this fails, as runc does.
 */
int pyrt_stage1_oom_score_adj(const struct pyrt_plan *p, int proc_fd, int sync_fd)
{
    char buf[16];
    int fd, len;
    ssize_t n;

    if (!p->set_oom_score_adj)
        return 0;
    len = snprintf(buf, sizeof buf, "%d", (int)p->oom_score_adj);
    fd = openat(proc_fd, "self/oom_score_adj", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return pyrt_fail(sync_fd, "oom_score_adj", errno, "open /proc/self/oom_score_adj");
    do
        n = write(fd, buf, (size_t)len);
    while (n < 0 && errno == EINTR);
    if (n != len) {
        int err = n < 0 ? errno : EIO;
        close(fd);
        return pyrt_fail(sync_fd, "oom_score_adj", err, "write \"%s\" to /proc/self/oom_score_adj",
                         buf);
    }
    if (close(fd) < 0)
        return pyrt_fail(sync_fd, "oom_score_adj", errno, "close /proc/self/oom_score_adj");
    return 0;
}
