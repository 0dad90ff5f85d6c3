/*
 * creds.c - the user process's credentials, applied after `start`:
 * supplementary groups, gid, bounding set (while still privileged), uid,
 * the effective/permitted/inheritable sets (raw capset v3, no libcap),
 * ambient caps, umask, no_new_privs.
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

static int set_cap_sets(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    int cap;

    data[0].effective = (uint32_t)p->cap_effective;
    data[1].effective = (uint32_t)(p->cap_effective >> 32);
    data[0].permitted = (uint32_t)p->cap_permitted;
    data[1].permitted = (uint32_t)(p->cap_permitted >> 32);
    data[0].inheritable = (uint32_t)p->cap_inheritable;
    data[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return pyrt_fail(c->sync_fd, "capabilities", errno,
                         "capset effective %#llx permitted %#llx inheritable %#llx",
                         (unsigned long long)p->cap_effective, (unsigned long long)p->cap_permitted,
                         (unsigned long long)p->cap_inheritable);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "capabilities", errno, "clear ambient set");
    for (cap = 0; cap < 64; cap++)
        if ((p->cap_ambient & (1ULL << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return pyrt_fail(c->sync_fd, "capabilities", errno, "raise %d in the ambient set", cap);
    return 0;
}

int pyrt_set_creds(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    int fd = c->sync_fd;

    /* gid_t is uint32_t on Linux, so the plan's array is passed as is. */
    if (p->set_groups && setgroups(p->n_groups, (const gid_t *)p->groups) < 0)
        return pyrt_fail(fd, "user", errno, "setgroups (%zu groups)", p->n_groups);
    if (setresgid(p->gid, p->gid, p->gid) < 0)
        return pyrt_fail(fd, "user", errno, "setresgid %u", p->gid);
    if (p->set_caps) {
        if (drop_bounding(c) < 0)
            return -1;
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            return pyrt_fail(fd, "capabilities", errno, "prctl(PR_SET_KEEPCAPS)");
    }
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        return pyrt_fail(fd, "user", errno, "setresuid %u", p->uid);
    if (p->set_caps && set_cap_sets(c) < 0)
        return -1;
    if (p->umask >= 0)
        umask((mode_t)p->umask);
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pyrt_fail(fd, "no_new_privs", errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    return 0;
}
