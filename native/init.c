/*
 * init.c - the container's init, from clone to execve, in the order
 * docs/process-chain.md describes.  Each step reports its own failure; any failure ends the
 * process (after READY the caller may be gone: the report is best effort).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "pyrt.h"

/* The filesystem: host-side mounts, devices, pivot, then what needs the new root. */
static int setup_rootfs(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;

    if (!p->rootfs)
        return 0; /* e.g. exec into a running container: its root is already set */
    if (pyrt_prepare_root(c) < 0 ||
        pyrt_do_mounts(c) < 0 ||
        pyrt_make_devices(c) < 0 ||
        pyrt_make_symlinks(c) < 0 ||
        pyrt_make_cwd(c) < 0 ||
        pyrt_hooks_pause(c) < 0 || /* prestart, createRuntime, createContainer */
        pyrt_pivot_root(c) < 0 ||
        pyrt_reopen_dev_null(c) < 0 ||
        pyrt_root_propagation_post(c) < 0 ||
        pyrt_readonly_paths(c) < 0 || /* then masked: runc's order, visible in mountinfo */
        pyrt_mask_paths(c) < 0)
        return -1;
    if (p->readonly_root && pyrt_readonly_root(c) < 0)
        return -1;
    return 0;
}

static int before_ready(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    int maps = p->uid_map != NULL || p->gid_map != NULL;
    int early = p->seccomp_bpf != NULL && !p->no_new_privs;

    /* Non-dumpable first (CVE-2016-9962); with maps, right after stage1 wrote them (spawn.c). */
    if (!maps && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "prctl(PR_SET_DUMPABLE)");
    if (pyrt_wait_release(c) < 0 || pyrt_lifeline_arm(c) < 0)
        return -1;
    if (maps && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "prctl(PR_SET_DUMPABLE)");
    /* A session of its own, terminal or not, as runc's init and exec'd processes have. */
    if (setsid() < 0)
        return pyrt_fail(c->sync_fd, "init", errno, "setsid");
    if (pyrt_note_runtime_exe(c) < 0 ||
        pyrt_seccomp_prepare(c) < 0 || /* connects to a host path: before the rootfs */
        setup_rootfs(c) < 0 ||
        pyrt_set_names(c) < 0 ||
        pyrt_set_sysctls(c) < 0 ||
        pyrt_loopback_up(c) < 0 ||
        pyrt_set_rlimits(c) < 0 ||
        pyrt_set_sched_attrs(c) < 0 ||
        pyrt_setup_console(c) < 0 ||
        pyrt_enter_cwd(c, 0) < 0 ||
        pyrt_resolve_exe(c) < 0 ||
        pyrt_check_fifo(c) < 0)
        return -1;
    /*
     * The container's credentials before READY, as runc does: the init then waits on
     * the exec fifo holding only the container's capabilities, so code injected into it
     * (a container given CAP_SYS_PTRACE that shares its pid namespace) gains nothing,
     * and a failure here is a create-time error.  A process may always reopen its own
     * /proc/self/fd entries, so the fifo stays reachable under any uid.
     */
    if (pyrt_set_creds(c, early) < 0 ||
        pyrt_enter_cwd(c, 1) < 0)
        return -1;
    if (!p->lifeline_until_start && !pyrt_lifeline_handed_over(p)) {
        if (pyrt_lifeline_cut(c) < 0) /* exec, or a filter loaded below: cut it now */
            return -1;
    } else if (pyrt_lifeline_rearm(c) < 0) { /* a change of uid cleared PR_SET_PDEATHSIG; */
        return -1;                           /* `create` cuts it at the hand-over */
    }
    /*
     * Seccomp: with no_new_privs, last before execve (after_start).  Without it the
     * load needs CAP_SYS_ADMIN, which the credentials above kept for it: so here, with
     * the fds already marked close-on-exec and the executable checked, since every
     * syscall after the load is one the profile may deny.  What is left after it is
     * what runc's init also does after its load: dropping CAP_SYS_ADMIN (capset),
     * READY (write), the exec fifo (open, close), PR_SET_PDEATHSIG for `run`, and
     * the startContainer hooks.  (So `create` has no hand-over then: lifeline.c.)
     */
    if (early &&
        (pyrt_prepare_fds(c) < 0 ||
         pyrt_refuse_runtime_exe(c) < 0 ||
         pyrt_load_seccomp(c) < 0 ||
         pyrt_drop_admin(c) < 0))
        return -1;
    return 0;
}

static int after_start(struct pyrt_ctx *c)
{
    const struct pyrt_plan *p = c->plan;
    int late = p->no_new_privs || p->seccomp_bpf == NULL; /* no filter loaded yet */

    if (pyrt_wait_fifo(c) < 0 ||
        (p->lifeline_until_start && pyrt_lifeline_cut(c) < 0) ||
        pyrt_run_start_hooks(c) < 0)
        return -1;
    if (late &&
        (pyrt_prepare_fds(c) < 0 ||
         pyrt_refuse_runtime_exe(c) < 0 ||
         pyrt_load_seccomp(c) < 0))
        return -1;
    return 0;
}

void pyrt_init(const struct pyrt_plan *p, int release_fd, int fifo_fd, int caller_fd,
               int src_sock)
{
    struct pyrt_ctx c = {
        .plan = p,
        .sync_fd = p->sync_fd,
        .release_fd = release_fd,
        .fifo_fd = fifo_fd, /* opened by stage1 as the host root: see spawn.c */
        .root_fd = -1,
        .listener_fd = -1,
        .caller_fd = caller_fd,
        .src_sock = src_sock, /* bind sources from stage1: mountsrc.c */
    };

    /*
     * Without a mount namespace of its own, init's mounts are the runtime's, and a
     * caller told of a failure destroys the container (SIGKILL) at once: so the report
     * waits until pyrt_rootfs_cleanup has detached them.
     */
    pyrt_hold_failures();
    if (before_ready(&c) < 0) {
        pyrt_rootfs_cleanup(&c);
        pyrt_send_held_failure();
        _exit(1);
    }
    pyrt_send_held_failure(); /* none: from here on, failures are sent as they happen */
    if (pyrt_send_write(c.sync_fd, PYRT_MSG_READY) < 0) /* write(2): maybe after the filter */
        _exit(1);
    /* `create`: alive past READY only once the caller saved the state */
    if (pyrt_lifeline_handed_over(p) && pyrt_lifeline_handover(&c) < 0)
        _exit(1);
    if (after_start(&c) < 0)
        _exit(1);
    pyrt_exec(&c);
}
