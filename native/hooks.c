/*
 * hooks.c - the native half of the runtime-spec hooks (the policy is
 * pyruntime/hooks.py).
 *
 *  - pyrt_hooks_pause (init, before pivot_root): tell the caller the
 *    namespaces and mounts are ready (HOOKS), wait for CONTINUE.  The caller
 *    runs prestart/createRuntime in its own namespaces and createContainer in
 *    ours meanwhile.  CONTINUE carries init's pid as the caller sees it and the
 *    state JSON that startContainer hooks get on stdin.
 *  - pyrt_run_start_hooks (init, after start, before execve): fork+exec each
 *    startContainer hook; its path resolves in the container.
 *  - pyrt_hook_spawn (caller): run one hook in another process's namespaces
 *    (createContainer), as a child of the caller.
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

#define HOOK_STATE_MAX 65536
#define HOOK_OUTPUT_MAX 200

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
    if (n == 0)
        _exit(1); /* the caller gave up (a hook failed): it kills us anyway */
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

/* Child of init: stdin is the state, stdout+stderr the output pipe; exec the hook. */
static void __attribute__((noreturn)) exec_start_hook(const struct pyrt_hook *h, int in_fd, int out_fd)
{
    pyrt_default_signals();
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(126);
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
    dprintf(2, "exec %s: %s", h->path, strerrordesc_np(errno));
    _exit(127);
}

/*
 * Feed the state to the hook, keep the first bytes of its output, wait for it
 * to exit (a pidfd in the same poll), kill it at its timeout.  Returns the
 * wait status, or -1 on timeout (errno ETIMEDOUT) or another error.
 */
static int supervise(pid_t pid, int in_fd, int out_fd, int timeout_s, char *out, size_t out_len)
{
    struct pollfd fds[3];
    size_t sent = 0, got = 0;
    long deadline = timeout_s > 0 ? now_ms() + timeout_s * 1000L : -1;
    int pidfd, status = 0, exited = 0;

    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -1;
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
    if (hook_state_len == 0) {
        close(in_fd);
        in_fd = -1;
    }
    while (!exited) {
        int wait_ms = -1, n;
        if (deadline >= 0) {
            wait_ms = (int)(deadline - now_ms());
            if (wait_ms <= 0) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                close(pidfd);
                if (in_fd >= 0)
                    close(in_fd);
                errno = ETIMEDOUT;
                return -1;
            }
        }
        fds[0] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        fds[1] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
        fds[2] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
        n = poll(fds, 3, wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (fds[1].revents) {
            char tmp[512];
            ssize_t r = read(out_fd, tmp, sizeof tmp);
            if (r > 0 && got + 1 < out_len) {
                size_t take = (size_t)r < out_len - 1 - got ? (size_t)r : out_len - 1 - got;
                memcpy(out + got, tmp, take);
                got += take;
            }
            if (r == 0) /* no writer left; keep waiting on the pidfd only */
                out_fd = -1;
        }
        if (fds[2].revents) {
            ssize_t w = (fds[2].revents & POLLOUT) ?
                write(in_fd, hook_state + sent, hook_state_len - sent) : -1;
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 || sent == hook_state_len) {
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
    out[got] = '\0';
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static int run_start_hook(struct pyrt_ctx *c, size_t i)
{
    const struct pyrt_hook *h = &c->plan->start_hooks[i];
    char out[HOOK_OUTPUT_MAX + 1];
    int in[2], outp[2], status;
    pid_t pid;

    out[0] = '\0';
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0)
        return pyrt_fail(c->sync_fd, "startContainer hook", errno, "pipe for %s", h->path);
    pid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return pyrt_fail(c->sync_fd, "startContainer hook", errno, "fork for %s", h->path);
    if (pid == 0)
        exec_start_hook(h, in[0], outp[1]);
    close(in[0]);
    close(outp[1]);
    status = supervise(pid, in[1], outp[0], h->timeout, out, sizeof out);
    close(outp[0]);
    for (char *s = out; *s; s++)
        if (*s == '\n')
            *s = ' ';
    if (status < 0 && errno == ETIMEDOUT)
        return pyrt_failx(c->sync_fd, "startContainer hook", ETIMEDOUT,
                          "%s ran past its timeout of %ds", h->path, h->timeout);
    if (status < 0)
        return pyrt_fail(c->sync_fd, "startContainer hook", errno, "wait for %s", h->path);
    if (WIFSIGNALED(status))
        return pyrt_failx(c->sync_fd, "startContainer hook", 0, "%s killed by signal %d%s%s",
                          h->path, WTERMSIG(status), out[0] ? ": " : "", out);
    if (WEXITSTATUS(status) != 0)
        return pyrt_failx(c->sync_fd, "startContainer hook", 0, "%s exit status %d%s%s",
                          h->path, WEXITSTATUS(status), out[0] ? ": " : "", out);
    return 0;
}

int pyrt_run_start_hooks(struct pyrt_ctx *c)
{
    size_t i;

    for (i = 0; i < c->plan->n_start_hooks; i++)
        if (run_start_hook(c, i) < 0)
            return -1;
    return 0;
}

/* ---- caller side: one hook in another process's namespaces ---- */

struct hook_report {
    int32_t kind; /* 1: the hook's pid, 2: errno of a failed step */
    int32_t value;
};

static void report(int fd, int32_t kind, int32_t value)
{
    struct hook_report r = { kind, value };
    ssize_t n;

    do
        n = write(fd, &r, sizeof r);
    while (n < 0 && errno == EINTR);
}

static const struct { int32_t flag; const char *name; } ns_files[] = {
    { CLONE_NEWUSER, "user" }, /* first: it grants the rights to join the rest */
    { CLONE_NEWNS, "mnt" },
    { CLONE_NEWNET, "net" },
    { CLONE_NEWIPC, "ipc" },
    { CLONE_NEWUTS, "uts" },
    { CLONE_NEWCGROUP, "cgroup" },
    { CLONE_NEWPID, "pid" },
    { CLONE_NEWTIME, "time" },
};
#define N_NS (sizeof ns_files / sizeof ns_files[0])

static void __attribute__((noreturn)) hook_intermediate(int32_t target, int32_t ns_flags,
                                                        const struct pyrt_hook *h, int in_fd,
                                                        int out_fd, int err_fd, int rep)
{
    int fds[N_NS];
    char path[64];
    size_t i;
    pid_t pid;

    pyrt_default_signals();
    for (i = 0; i < N_NS; i++) {
        fds[i] = -1;
        if (!(ns_flags & ns_files[i].flag))
            continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)target, ns_files[i].name);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            report(rep, 2, errno);
            _exit(1);
        }
    }
    for (i = 0; i < N_NS; i++) {
        if (fds[i] < 0)
            continue;
        if (setns(fds[i], ns_files[i].flag) < 0) {
            report(rep, 2, errno);
            _exit(1);
        }
        close(fds[i]);
        if (ns_files[i].flag == CLONE_NEWUSER) {
            /* be the container's root, as the init is; best effort if it is unmapped */
            if (setresgid(0, 0, 0) == 0)
                setresuid(0, 0, 0);
        }
    }
    /* A new child enters the pid (and time) namespace; CLONE_PARENT makes it the caller's. */
    pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0, 0, 0, 0);
    if (pid < 0) {
        report(rep, 2, errno);
        _exit(1);
    }
    if (pid == 0) {
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
            report(rep, 2, errno);
            _exit(126);
        }
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* rep stays open until execve */
        execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
        report(rep, 2, errno);
        _exit(127);
    }
    report(rep, 1, pid);
    _exit(0);
}

int pyrt_hook_spawn(int32_t target_pid, int32_t ns_flags, const struct pyrt_hook *h,
                    int32_t stdin_fd, int32_t stdout_fd, int32_t stderr_fd)
{
    struct hook_report r;
    int rep[2], status, err = 0;
    pid_t mid, hook = 0;
    ssize_t n;

    if (pipe2(rep, O_CLOEXEC) < 0)
        return -errno;
    mid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
    if (mid < 0) {
        err = errno;
        close(rep[0]);
        close(rep[1]);
        return -err;
    }
    if (mid == 0)
        hook_intermediate(target_pid, ns_flags, h, stdin_fd, stdout_fd, stderr_fd, rep[1]);
    close(rep[1]);
    /* EOF once the intermediate has exited and the hook has exec'd (or died) */
    while ((n = read(rep[0], &r, sizeof r)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (n != sizeof r)
            continue;
        if (r.kind == 1)
            hook = r.value;
        else if (!err)
            err = r.value ? r.value : EIO;
    }
    close(rep[0]);
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
        ;
    if (err) {
        if (hook > 0) {
            kill(hook, SIGKILL);
            while (waitpid(hook, &status, 0) < 0 && errno == EINTR)
                ;
        }
        return -err;
    }
    return hook > 0 ? hook : -ECHILD;
}
