/*
 * spawn.c - the process chain: caller --clone--> stage1 --clone3--> init.
 *
 * stage1 is a plain fork-like clone of the (possibly multi-threaded) Python
 * caller.  It joins the namespaces given by path, then clones init with
 * CLONE_PARENT so init is the caller's child and outlives stage1.  It writes
 * init's id maps, reports init's pid, releases init through a pipe, and exits.
 * Ordering: PID is always sent before init is released, so the caller reads
 * PID first, then READY or ERROR.  If stage1 fails after cloning init, it
 * kills init and its ERROR message carries init's pid so the caller can reap
 * the zombie.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyrt.h"

/*
 * A fork of Python inherits its handlers (SIGINT -> Python's trampoline,
 * which writes to Python's wakeup fd) and its ignores (SIGPIPE, SIGXFSZ),
 * which execve would pass on to the container.  Start from defaults.
 */
void pyrt_default_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    int s;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL); /* EINVAL for glibc-reserved signals: fine */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Fork-like clone (no new stack): returns 0 in the child, like fork().
 * With a cgroup2 cgroup_fd, init starts in that cgroup (CLONE_INTO_CGROUP); if the
 * kernel refuses, stage1 moves itself there (cgroup.c) and clones without it,
 * and the cgroup.procs write reports the real reason if that fails too.
 */
static pid_t clone_init(const struct pyrt_plan *p, int sync_fd)
{
    int32_t ns_flags = p->clone_flags;
    struct clone_args args;
    long pid;

    memset(&args, 0, sizeof args);
    args.flags = CLONE_PARENT | (uint32_t)ns_flags;
    /*
     * clone3 rejects an exit_signal with CLONE_PARENT: the child inherits
     * stage1's, which is SIGCHLD, so the caller is notified as for any child.
     */
    args.exit_signal = 0;
    if (p->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)p->cgroup_fd;
        pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid >= 0)
            return (pid_t)pid;
        args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
        args.cgroup = 0;
        if (pyrt_join_cgroup2_fallback(p, sync_fd) < 0)
            return -2; /* reported */
    }
    pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG))
        pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | (uint32_t)ns_flags) | SIGCHLD,
                      0, 0, 0, 0);
    return (pid_t)pid;
}

/* stage1's failure exit: its bind sources helper (mountsrc.c), if any, goes first. */
static void __attribute__((noreturn)) stage1_exit(pid_t helper, int helper_go)
{
    if (helper > 0)
        pyrt_source_helper_abort(helper, helper_go);
    _exit(1);
}

static void __attribute__((noreturn)) stage1(const struct pyrt_plan *p, pid_t caller)
{
    int fd = p->sync_fd;
    int maps = p->uid_map != NULL || p->gid_map != NULL;
    int release[2];
    int proc_fd;
    int fifo_fd = -1;
    int caller_fd;
    int src[2] = { -1, -1 };
    int helper_go = -1;
    pid_t helper = -1;
    pid_t pid;
    char go = '1';

    pyrt_default_signals();
    /*
     * Non-dumpable so that nothing in a joined namespace can ptrace us
     * (CVE-2016-9962).  Not when init needs maps: init inherits this mm flag,
     * and a non-dumpable init's /proc/PID/{uid,gid}_map files belong to the initial
     * root, which a rootless caller cannot write.  init then turns it off
     * itself as soon as the maps are written, before doing anything else.
     */
    if (!maps && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        pyrt_fail(fd, "stage1", errno, "prctl(PR_SET_DUMPABLE)");
        _exit(1);
    }
    proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd < 0) {
        pyrt_fail(fd, "stage1", errno, "open /proc");
        _exit(1);
    }
    /* before any join: init inherits it (process.c) */
    if (pyrt_stage1_oom_score_adj(p, proc_fd, fd) < 0)
        _exit(1);
    /*
     * The exec fifo lives in the runtime's state dir, which the container's root
     * (a mapped uid, in a user namespace) may not be able to traverse: open it
     * O_PATH here, as the caller's user and before joining anything; init
     * inherits the fd and reopens it for writing through /proc/self/fd.
     */
    if (p->exec_fifo) {
        fifo_fd = open(p->exec_fifo, O_PATH | O_CLOEXEC);
        if (fifo_fd < 0) {
            pyrt_fail(fd, "exec fifo", errno, "open %s", p->exec_fifo);
            _exit(1);
        }
    }
    /*
     * A pidfd of the caller (lifeline.c; -1: a kernel without pidfd_open, no check).  If
     * the caller died before it was taken, we were reparented: getppid() names the
     * reaper, not the caller, and an init armed against the reaper would outlive a caller
     * that never recorded it.  So the caller's pid comes from before the clone, and a
     * parent that is no longer the caller ends stage1 here, with nothing made.
     */
    caller_fd = (int)syscall(SYS_pidfd_open, caller, 0);
    if (getppid() != caller)
        _exit(1);
    /* bind sources are opened as the runtime, by stage1 or its helper: mountsrc.c */
    if (pyrt_needs_source_fds(p)) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, src) < 0) {
            pyrt_fail(fd, "stage1", errno, "socketpair for bind sources");
            _exit(1);
        }
        if (pyrt_source_helper_needed(p)) {
            helper = pyrt_source_helper_start(p, proc_fd, src[1], &helper_go);
            if (helper < 0)
                _exit(1);
        }
    }
    /* v1 hierarchies: into the container's cgroups before any setns (cgroup2: at clone) */
    if (pyrt_join_cgroups(p, fd) < 0 ||
        pyrt_join_namespaces(p, fd) < 0 ||
        pyrt_setup_timens(p, fd) < 0)
        stage1_exit(helper, helper_go);
    if (pipe2(release, O_CLOEXEC) < 0) {
        pyrt_fail(fd, "stage1", errno, "pipe2");
        stage1_exit(helper, helper_go);
    }

    pid = clone_init(p, fd);
    if (pid == -2)
        stage1_exit(helper, helper_go);
    if (pid < 0) {
        pyrt_fail(fd, "clone", errno, "clone init (namespace flags %#x)", (unsigned)p->clone_flags);
        stage1_exit(helper, helper_go);
    }
    if (pid == 0) {
        close(release[1]);
        close(proc_fd);
        if (src[1] >= 0)
            close(src[1]);
        if (helper_go >= 0)
            close(helper_go);
        pyrt_init(p, release[0], fifo_fd, caller_fd, src[0]);
    }
    close(release[0]);
    if (src[0] >= 0)
        close(src[0]);

    if (maps && pyrt_write_maps(proc_fd, pid, p, fd) < 0)
        goto kill_init;
    if (helper > 0) {
        if (pyrt_source_helper_finish(p, helper, helper_go, pid) < 0) {
            helper = -1;
            goto kill_init;
        }
        helper = -1;
    } else if (src[1] >= 0 && pyrt_send_mount_sources(p, proc_fd, pid, src[1],
                                                      (p->clone_flags & CLONE_NEWNS) != 0) < 0) {
        goto kill_init;
    }
    if (pyrt_send(fd, PYRT_MSG_PID, pid) < 0) {
        pyrt_fail_pid(fd, pid, "sync", errno, "send init pid");
        goto kill_init;
    }
    if (write(release[1], &go, 1) != 1) {
        pyrt_fail_pid(fd, pid, "sync", errno, "release init");
        goto kill_init;
    }
    _exit(0);

kill_init:
    kill(pid, SIGKILL);
    stage1_exit(helper, helper_go);
}

int pyrt_spawn(const struct pyrt_plan *plan)
{
    pid_t caller = getpid();
    pid_t pid;
    int status;

    pid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return -errno;
    if (pid == 0)
        stage1(plan, caller);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return -ECHILD;
}
