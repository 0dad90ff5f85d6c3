/*
 * sched.c - per-process kernel attributes set by init before READY (so that a
 * refusal fails `create`), inherited by the user process across execve:
 * linux.personality, process.ioPriority, process.scheduler, linux.memoryPolicy.
 * The values are final: Python turned names into numbers (plan/sched.py).
 */
#include <errno.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrt.h"

struct pyrt_sched_attr { /* struct sched_attr, uapi linux/sched/types.h (v1: 48 bytes) */
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

static int set_personality(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;

    if (!p->set_personality)
        return 0;
    if (personality((unsigned long)p->personality) < 0)
        return pyrt_fail(c->sync_fd, "personality", errno, "personality %#x",
                         (unsigned)p->personality);
    return 0;
}

static int set_ioprio(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;

    if (!p->set_ioprio)
        return 0;
    /* ioprio_set(IOPRIO_WHO_PROCESS, 0: self, value) */
    if (syscall(SYS_ioprio_set, 1, 0, p->ioprio) < 0)
        return pyrt_fail(c->sync_fd, "ioPriority", errno, "ioprio_set class %d level %d",
                         p->ioprio >> 13, p->ioprio & 0x1fff);
    return 0;
}

static int set_scheduler(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    struct pyrt_sched_attr a;

    if (!p->set_scheduler)
        return 0;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.sched_policy = p->sched_policy;
    a.sched_flags = p->sched_flags;
    a.sched_nice = p->sched_nice;
    a.sched_priority = p->sched_priority;
    a.sched_runtime = p->sched_runtime;
    a.sched_deadline = p->sched_deadline;
    a.sched_period = p->sched_period;
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
        return pyrt_fail(c->sync_fd, "scheduler", errno,
                         "sched_setattr policy %u nice %d priority %u flags %#llx",
                         p->sched_policy, p->sched_nice, p->sched_priority,
                         (unsigned long long)p->sched_flags);
    return 0;
}

static int set_mempolicy(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    const uint64_t *nodes = p->mempolicy_maxnode ? p->mempolicy_nodes : NULL;

    if (!p->set_mempolicy)
        return 0;
    if (syscall(SYS_set_mempolicy, p->mempolicy_mode, nodes,
                (unsigned long)p->mempolicy_maxnode) < 0)
        return pyrt_fail(c->sync_fd, "memoryPolicy", errno, "set_mempolicy mode %#x",
                         (unsigned)p->mempolicy_mode);
    return 0;
}

int pyrt_set_sched_attrs(struct pyrt_ctx *c)
{
    if (set_personality(c) < 0 ||
        set_ioprio(c) < 0 ||
        set_scheduler(c) < 0 ||
        set_mempolicy(c) < 0)
        return -1;
    return 0;
}
