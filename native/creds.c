/*
 * creds.c - the user process's credentials, applied by init before READY:
 * supplementary groups, gid, bounding set (while still privileged), uid,
 * the effective/permitted/inheritable sets (raw capset v3, no libcap),
 * ambient caps, umask, no_new_privs.
 *
 * A seccomp filter loaded without no_new_privs needs CAP_SYS_ADMIN, and every
 * syscall after the load is one the container's profile may deny.  So with
 * `keep_admin` everything is done before the load except dropping
 * CAP_SYS_ADMIN itself: it stays permitted and effective, and pyrt_drop_admin()
 * (one capset, only if the final sets lack it) follows the load.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrt.h"

static int drop_bounding(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    int cap;

    for (cap = 0; cap <= p->last_cap && cap < 64; cap++) {
        if (p->cap_bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return pyrt_fail(c->sync_fd, "capabilities", errno, "drop %d from the bounding set", cap);
    }
    return 0;
}

#define ADMIN (1ULL << CAP_SYS_ADMIN)

static int capset3(struct pyrt_ctx *c, uint64_t eff, uint64_t perm, uint64_t inh)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];

    data[0].effective = (uint32_t)eff;
    data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)perm;
    data[1].permitted = (uint32_t)(perm >> 32);
    data[0].inheritable = (uint32_t)inh;
    data[1].inheritable = (uint32_t)(inh >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return pyrt_fail(c->sync_fd, "capabilities", errno,
                         "capset effective %#llx permitted %#llx inheritable %#llx",
                         (unsigned long long)eff, (unsigned long long)perm,
                         (unsigned long long)inh);
    return 0;
}

static int capget3(struct pyrt_ctx *c, uint64_t *eff, uint64_t *perm, uint64_t *inh)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];

    if (syscall(SYS_capget, &hdr, data) < 0)
        return pyrt_fail(c->sync_fd, "capabilities", errno, "capget");
    *eff = data[0].effective | (uint64_t)data[1].effective << 32;
    *perm = data[0].permitted | (uint64_t)data[1].permitted << 32;
    *inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
    return 0;
}

static int set_cap_sets(struct pyrt_ctx *c, int keep_admin)
{
    const struct pyrt_plan *p = c->plan;
    uint64_t extra = keep_admin ? ADMIN : 0;
    int cap;

    c->cap_final[0] = p->cap_effective;
    c->cap_final[1] = p->cap_permitted;
    c->cap_final[2] = p->cap_inheritable;
    if (capset3(c, p->cap_effective | extra, p->cap_permitted | extra, p->cap_inheritable) < 0)
        return -1;
    c->admin_kept = keep_admin && ((p->cap_effective & ADMIN) == 0 || (p->cap_permitted & ADMIN) == 0);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "capabilities", errno, "clear ambient set");
    for (cap = 0; cap < 64; cap++)
        if ((p->cap_ambient & (1ULL << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return pyrt_fail(c->sync_fd, "capabilities", errno, "raise %d in the ambient set", cap);
    return 0;
}

/*
 * Without process.capabilities the kernel's rule for a change of uid applies:
 * leaving uid 0 clears the permitted and effective sets.  With keep_admin that
 * is done by hand after the load instead (PR_SET_KEEPCAPS keeps them until then).
 */
static int keep_for_filter(struct pyrt_ctx *c)
{
    uint64_t eff = 0, perm = 0, inh = 0;

    if (capget3(c, &eff, &perm, &inh) < 0 || capset3(c, perm, perm, inh) < 0)
        return -1;
    c->cap_final[0] = 0;
    c->cap_final[1] = 0;
    c->cap_final[2] = inh;
    c->admin_kept = 1;
    return 0;
}

int pyrt_set_creds(struct pyrt_ctx *c, int keep_admin)
{
    const struct pyrt_plan *p = c->plan;
    int fd = c->sync_fd;
    uid_t ruid, euid, suid;
    int keep_plain = 0;

    if (keep_admin && !p->set_caps && p->uid != 0) {
        if (getresuid(&ruid, &euid, &suid) < 0)
            return pyrt_fail(fd, "user", errno, "getresuid");
        keep_plain = ruid == 0 || euid == 0 || suid == 0;
    }

    /* gid_t is uint32_t on Linux, so the plan's array is passed as is. */
    if (p->set_groups && setgroups(p->n_groups, (const gid_t *)p->groups) < 0)
        return pyrt_fail(fd, "user", errno, "setgroups (%zu groups)", p->n_groups);
    if (setresgid(p->gid, p->gid, p->gid) < 0)
        return pyrt_fail(fd, "user", errno, "setresgid %u", p->gid);
    if (p->set_caps) {
        if (drop_bounding(c) < 0)
            return -1;
    }
    if ((p->set_caps || keep_plain) && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return pyrt_fail(fd, "capabilities", errno, "prctl(PR_SET_KEEPCAPS)");
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        return pyrt_fail(fd, "user", errno, "setresuid %u", p->uid);
    if (p->set_caps && set_cap_sets(c, keep_admin) < 0)
        return -1;
    if (keep_plain && keep_for_filter(c) < 0)
        return -1;
    if (p->umask >= 0)
        umask((mode_t)p->umask);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pyrt_fail(fd, "no_new_privs", errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    return 0;
}

/* Right after a seccomp load that needed CAP_SYS_ADMIN: the final sets (see the top). */
int pyrt_drop_admin(struct pyrt_ctx *c)
{
    if (!c->admin_kept)
        return 0;
    c->admin_kept = 0;
    return capset3(c, c->cap_final[0], c->cap_final[1], c->cap_final[2]);
}
