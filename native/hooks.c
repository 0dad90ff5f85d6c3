/*
 * hooks.c - the native half of the runtime-spec hooks (the policy is
 * pyruntime/hooks.py).
 *
 *  - pyrt_hook_run: THE way a hook process runs, for every kind: fork (into
 *    another process's namespaces if asked), chdir, stdin = the state JSON,
 *    stdout+stderr captured for the error line, killed at its timeout.  The
 *    caller (Python, through cffi) runs prestart, createRuntime,
 *    createContainer, poststart and poststop with it; the init runs the
 *    startContainer hooks with it.
 *  - pyrt_hooks_pause (init, before pivot_root): tell the caller the
 *    namespaces and mounts are ready (HOOKS), wait for CONTINUE.  The caller
 *    runs prestart/createRuntime in its own namespaces and createContainer in
 *    ours meanwhile.  CONTINUE carries init's pid as the caller sees it and the
 *    state JSON that startContainer hooks get on stdin.
 *  - pyrt_run_start_hooks (init, after start, before execve): each
 *    startContainer hook, with the init's own credentials, cgroup, seccomp
 *    filter and cwd (those of the container's process, as runc gives them);
 *    its path resolves in the container.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pyrt.h"

#define HOOK_STATE_MAX PYRT_HOOK_STATE_MAX /* api.h */

/* The state JSON from CONTINUE; a static buffer, as init must not malloc. */
static char hook_state[HOOK_STATE_MAX];
static size_t hook_state_len;

int pyrt_hooks_pause(struct pyrt_ctx *c)
{
    static char buf[sizeof(struct pyrt_msg) + HOOK_STATE_MAX];
    struct pyrt_msg m;
    ssize_t n;

    if (!c->plan->hooks_pause)
        return 0;
    if (pyrt_send(c->sync_fd, PYRT_MSG_HOOKS, 0) < 0)
        return pyrt_fail(c->sync_fd, "hooks", errno, "send HOOKS");
    do
        n = recv(c->sync_fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0) /* the caller gave up (a hook failed): undo the mounts (init.c), exit */
        return -1;
    if (n < (ssize_t)sizeof m)
        return pyrt_fail(c->sync_fd, "hooks", n < 0 ? errno : EPROTO, "wait for CONTINUE");
    memcpy(&m, buf, sizeof m);
    if (m.type != PYRT_MSG_CONTINUE)
        return pyrt_failx(c->sync_fd, "hooks", EPROTO, "expected CONTINUE, got message %d", m.type);
    hook_state_len = (size_t)n - sizeof m;
    memcpy(hook_state, buf + sizeof m, hook_state_len);
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- the runner ---- */

struct hook_report {
    int32_t step;  /* 0: value is the hook's pid; else an index into steps[] */
    int32_t value; /* the pid, or the errno of the failed step */
};

static const char *const steps[] = { "", "cwd", "namespace", "setns", "fork", "stdio", "exec" };
enum { STEP_CWD = 1, STEP_NS, STEP_SETNS, STEP_FORK, STEP_STDIO, STEP_EXEC };

static void report(int fd, int32_t step, int32_t value)
{
    struct hook_report r = { step, value };
    ssize_t n;

    do
        n = write(fd, &r, sizeof r);
    while (n < 0 && errno == EINTR);
}

static void __attribute__((noreturn)) child_fail(int rep, int32_t step, int err)
{
    report(rep, step, err ? err : EIO);
    _exit(127);
}

/*
 * Join the namespaces of `target` that ns_flags names.  The pid and time
 * namespaces apply to children only, so a new child goes on, made the caller's
 * child by CLONE_PARENT (it reports its pid); this process exits.
 */
static void enter_namespaces(int32_t target, int32_t ns_flags, int rep)
{
    int fds[PYRT_N_NS];
    char path[64];
    size_t i;
    pid_t pid;

    for (i = 0; i < PYRT_N_NS; i++) { /* the user namespace first (namespaces.c) */
        fds[i] = -1;
        if (!(ns_flags & pyrt_ns_kinds[i].flag))
            continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)target, pyrt_ns_kinds[i].file);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0)
            child_fail(rep, STEP_NS, errno);
    }
    for (i = 0; i < PYRT_N_NS; i++) {
        if (fds[i] < 0)
            continue;
        if (setns(fds[i], pyrt_ns_kinds[i].flag) < 0)
            child_fail(rep, STEP_SETNS, errno);
        close(fds[i]);
        if (pyrt_ns_kinds[i].flag == CLONE_NEWUSER) {
            /* be the container's root, as the init is; best effort if it is unmapped */
            if (setresgid(0, 0, 0) == 0)
                setresuid(0, 0, 0);
        }
    }
    pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0, 0, 0, 0);
    if (pid < 0)
        child_fail(rep, STEP_FORK, errno);
    if (pid > 0) {
        report(rep, 0, pid);
        _exit(0);
    }
}

/*
 * The hook's side of the fork: the cwd is opened as the caller sees it (so
 * "/proc/PID/root/..." names a directory in another mount namespace), then the
 * namespaces are entered, then fchdir, stdio, exec.  Failures go to `rep`.
 */
static void __attribute__((noreturn)) hook_child(const struct pyrt_hook *h, const char *cwd,
                                                 int32_t ns_pid, int32_t ns_flags,
                                                 int in_fd, int out_fd, int rep)
{
    int cwd_fd = -1;

    pyrt_default_signals();
    if (cwd && (cwd_fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        child_fail(rep, STEP_CWD, errno);
    if (ns_flags)
        enter_namespaces(ns_pid, ns_flags, rep);
    if (cwd_fd >= 0 && fchdir(cwd_fd) < 0)
        child_fail(rep, STEP_CWD, errno);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        child_fail(rep, STEP_STDIO, errno);
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* rep stays open until execve */
    execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
    child_fail(rep, STEP_EXEC, errno);
}

/* The output as one line: whitespace runs become one space, at most PYRT_HOOK_OUTPUT_MAX. */
static void squeeze(const char *in, size_t len, char *out)
{
    size_t i, n = 0;
    int space = 0;

    for (i = 0; i < len && n < PYRT_HOOK_OUTPUT_MAX; i++) {
        char ch = in[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f') {
            space = n > 0;
            continue;
        }
        if (space) {
            if (n + 1 >= PYRT_HOOK_OUTPUT_MAX)
                break;
            out[n++] = ' ';
        }
        space = 0;
        out[n++] = ch;
    }
    out[n] = '\0';
}

/*
 * Feed the state to the hook, keep the first bytes of its output, wait for it
 * to exit (a pidfd in the same poll), kill it at its timeout.
 */
static int supervise(pid_t pid, int in_fd, int out_fd, const char *state, size_t state_len,
                     int timeout_s, struct pyrt_hook_result *r)
{
    char out[PYRT_HOOK_OUTPUT_MAX * 4];
    struct pollfd fds[3];
    size_t sent = 0, got = 0;
    long deadline = timeout_s > 0 ? now_ms() + timeout_s * 1000L : -1;
    int pidfd, status = 0, exited = 0, rc = 0;

    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        r->error = errno;
        r->step = "wait";
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        close(in_fd);
        return -1;
    }
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
    if (state_len == 0) {
        close(in_fd);
        in_fd = -1;
    }
    while (!exited) {
        int wait_ms = -1, n;
        if (deadline >= 0) {
            wait_ms = (int)(deadline - now_ms());
            if (wait_ms <= 0) {
                kill(pid, SIGKILL);
                r->timed_out = 1;
                break;
            }
        }
        fds[0] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        fds[1] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
        fds[2] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
        n = poll(fds, 3, wait_ms);
        if (n < 0 && errno != EINTR) {
            r->error = errno;
            r->step = "wait";
            kill(pid, SIGKILL);
            rc = -1;
            break;
        }
        if (n <= 0)
            continue;
        if (fds[1].revents) {
            char tmp[512];
            ssize_t got_now = read(out_fd, tmp, sizeof tmp);
            if (got_now > 0 && got < sizeof out) {
                size_t take = (size_t)got_now < sizeof out - got ? (size_t)got_now : sizeof out - got;
                memcpy(out + got, tmp, take);
                got += take;
            }
            if (got_now == 0) /* no writer left; keep waiting on the pidfd only */
                out_fd = -1;
        }
        if (fds[2].revents) {
            ssize_t w = (fds[2].revents & POLLOUT) ? write(in_fd, state + sent, state_len - sent) : -1;
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 || sent == state_len) { /* the hook need not read its stdin */
                close(in_fd);
                in_fd = -1;
            }
        }
        if (fds[0].revents)
            exited = 1;
    }
    if (in_fd >= 0)
        close(in_fd);
    close(pidfd);
    squeeze(out, got, r->output);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            r->error = errno;
            r->step = "wait";
            return -1;
        }
    }
    r->status = status;
    return rc;
}

int pyrt_hook_run(const struct pyrt_hook *h, const char *cwd, int32_t ns_pid, int32_t ns_flags,
                  const char *state, size_t state_len, struct pyrt_hook_result *r)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, rep[2] = { -1, -1 }, status, rc;
    struct hook_report m;
    pid_t child, hook = 0;
    ssize_t n;

    memset(r, 0, sizeof *r);
    r->step = "";
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
        r->error = errno;
        r->step = "pipe";
        goto fail;
    }
    child = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
    if (child < 0) {
        r->error = errno;
        r->step = "fork";
        goto fail;
    }
    if (child == 0)
        hook_child(h, cwd, ns_pid, ns_flags, in[0], out[1], rep[1]);
    close(in[0]);
    close(out[1]);
    close(rep[1]);
    in[0] = out[1] = rep[1] = -1;
    if (!ns_flags)
        hook = child;
    /* EOF once the hook has exec'd (or died), and any process in between has exited */
    while ((n = read(rep[0], &m, sizeof m)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (!r->error) {
                r->error = errno;
                r->step = "fork";
            }
            break;
        }
        if (n != sizeof m)
            continue;
        if (m.step == 0)
            hook = m.value;
        else if (!r->error) {
            r->error = m.value;
            r->step = steps[m.step < (int32_t)(sizeof steps / sizeof steps[0]) ? m.step : 0];
        }
    }
    close(rep[0]);
    rep[0] = -1;
    if (ns_flags)
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
    if (r->error || hook <= 0) {
        if (!r->error) {
            r->error = ECHILD;
            r->step = "fork";
        }
        if (hook > 0) {
            kill(hook, SIGKILL);
            while (waitpid(hook, &status, 0) < 0 && errno == EINTR)
                ;
        }
        goto fail;
    }
    rc = supervise(hook, in[1], out[0], state, state_len, h->timeout, r);
    close(out[0]);
    return rc;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (rep[i] >= 0)
            close(rep[i]);
    }
    return -1;
}

/* ---- the init's side ---- */

static int run_start_hook(struct pyrt_ctx *c, size_t i)
{
    const struct pyrt_hook *h = &c->plan->start_hooks[i];
    struct pyrt_hook_result r;
    const char *sep;

    if (pyrt_hook_run(h, NULL, 0, 0, hook_state, hook_state_len, &r) < 0)
        return pyrt_fail(c->sync_fd, "startContainer hook", r.error, "%s %s", r.step, h->path);
    sep = r.output[0] ? ": " : "";
    if (r.timed_out)
        return pyrt_failx(c->sync_fd, "startContainer hook", ETIMEDOUT,
                          "%s ran past its timeout of %ds", h->path, h->timeout);
    if (WIFSIGNALED(r.status))
        return pyrt_failx(c->sync_fd, "startContainer hook", 0, "%s killed by signal %d%s%s",
                          h->path, WTERMSIG(r.status), sep, r.output);
    if (WEXITSTATUS(r.status) != 0)
        return pyrt_failx(c->sync_fd, "startContainer hook", 0, "%s exit status %d%s%s",
                          h->path, WEXITSTATUS(r.status), sep, r.output);
    return 0;
}

/*
 * A hook need not read its stdin: one that exits before the state is written
 * makes that write raise SIGPIPE, whose default action would end the init (a
 * pid namespace's init is spared by the kernel; an init that is not pid 1, in
 * a joined pid namespace or with none, is not).  So SIGPIPE is ignored while
 * the hooks run (the write fails with EPIPE; supervise() stops feeding) and is
 * the default again before the container's execve, which keeps an ignore.
 */
int pyrt_run_start_hooks(struct pyrt_ctx *c)
{
    struct sigaction ign, dfl;
    size_t i;
    int rc = 0;

    if (c->plan->n_start_hooks == 0)
        return 0;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    if (sigaction(SIGPIPE, &ign, NULL) < 0)
        return pyrt_fail(c->sync_fd, "startContainer hook", errno, "ignore SIGPIPE");
    for (i = 0; i < c->plan->n_start_hooks && rc == 0; i++)
        rc = run_start_hook(c, i);
    if (sigaction(SIGPIPE, &dfl, NULL) < 0 && rc == 0)
        return pyrt_fail(c->sync_fd, "startContainer hook", errno, "restore SIGPIPE");
    return rc;
}
