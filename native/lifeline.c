/*
 * lifeline.c - the init dies with its caller until the container has another owner.
 *
 * If the runtime process is killed between clone and the hand-over, nobody would
 * ever release or reap an init blocked on the exec fifo.  So the init is armed with
 * PR_SET_PDEATHSIG(SIGKILL) and disarmed when the container is handed over: for
 * `create`, after READY, once the caller saved the state and says so (HANDOVER; the
 * caller then exits on purpose and the init lives on under the caller's subreaper), or
 * once `start` opened the fifo for a foreground `run`.  A caller that dies between
 * READY and its state.json takes the init with it (or closes the sync socket: the init
 * then exits too), so no init outlives a container nobody recorded.
 * Arming happens after the init's ids settle (a uid change clears the setting), and
 * a pidfd of the caller, taken by stage1, closes the race with a caller that died
 * before the arming.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "pyrt.h"

int pyrt_lifeline_arm(struct pyrt_ctx *c)
{
    struct pollfd pfd;
    int gone;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "prctl(PR_SET_PDEATHSIG)");
    if (c->caller_fd < 0)
        return 0;
    pfd.fd = c->caller_fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    gone = poll(&pfd, 1, 0) > 0; /* a pidfd polls readable once its process exited */
    close(c->caller_fd);
    c->caller_fd = -1;
    if (gone)
        _exit(1);
    return 0;
}

int pyrt_lifeline_handed_over(const struct pyrt_plan *p)
{
    /*
     * `create`; not with a seccomp filter loaded before READY (no no_new_privs): after
     * that load the init makes only the syscalls runc's makes (init.c), so it cuts the
     * lifeline before it, and a caller killed before its state.json leaves the init to
     * `delete --force`, which kills what the provisional record's cgroups hold.
     */
    return p->exec_fifo != NULL && !p->lifeline_until_start &&
           !(p->seccomp_bpf != NULL && !p->no_new_privs);
}

int pyrt_lifeline_handover(struct pyrt_ctx *c)
{
    struct pyrt_msg m;
    ssize_t n;

    /* read(2) and write(2): a filter with no_new_privs comes later, but keep to them */
    do
        n = read(c->sync_fd, &m, sizeof m);
    while (n < 0 && errno == EINTR);
    if (n < (ssize_t)sizeof m.type || m.type != PYRT_MSG_HANDOVER)
        _exit(1); /* the caller died (EOF) or gave up before saving the state */
    if (pyrt_lifeline_cut(c) < 0)
        return -1;
    if (pyrt_send_write(c->sync_fd, PYRT_MSG_HANDOVER) < 0)
        _exit(1); /* the caller cannot know we live on: it kills us */
    return 0;
}

int pyrt_lifeline_rearm(struct pyrt_ctx *c)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "prctl(PR_SET_PDEATHSIG)");
    return 0;
}

int pyrt_lifeline_cut(struct pyrt_ctx *c)
{
    if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "prctl(PR_SET_PDEATHSIG, 0)");
    return 0;
}

int pyrt_parent_death_signal(int32_t sig, int32_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) < 0)
        return -errno;
    if (sig && getppid() != parent)
        return -ESRCH;
    return 0;
}
