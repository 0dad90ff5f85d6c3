/*
 * namespaces.c - joining namespaces by path (stage1), writing the new user
 * namespace's id maps (stage1, for init), and init's wait for stage1's go.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyrt.h"

#define PYRT_MAX_JOINS 16

/* The same list as pyruntime/plan/linux_consts.py's NAMESPACES, in its order (the user
   namespace first: joining it grants the rights to join the rest); tests/test_namespaces.py
   compares them through pyrt_ns_file(). */
const struct pyrt_ns_kind pyrt_ns_kinds[PYRT_N_NS] = {
    { CLONE_NEWUSER, "user" },
    { CLONE_NEWNS, "mnt" },
    { CLONE_NEWPID, "pid" },
    { CLONE_NEWNET, "net" },
    { CLONE_NEWIPC, "ipc" },
    { CLONE_NEWUTS, "uts" },
    { CLONE_NEWCGROUP, "cgroup" },
    { CLONE_NEWTIME, "time" },
};

const char *pyrt_ns_file(int32_t flag)
{
    size_t i;

    for (i = 0; i < PYRT_N_NS; i++)
        if (pyrt_ns_kinds[i].flag == flag)
            return pyrt_ns_kinds[i].file;
    return NULL;
}

static const char *ns_name(int32_t type)
{
    const char *file = pyrt_ns_file(type);

    return file ? file : "?";
}

/*
 * setns() each join in the plan's order.  All paths are opened first (as runc
 * does): once in another user or mount namespace the remaining paths might
 * no longer be reachable.
 */
int pyrt_join_namespaces(const struct pyrt_plan *p, int sync_fd)
{
    int fds[PYRT_MAX_JOINS];
    size_t i, n = p->n_joins;
    int rc = 0;

    if (n > PYRT_MAX_JOINS)
        return pyrt_failx(sync_fd, "setns", E2BIG, "%zu namespaces to join, at most %d",
                          n, PYRT_MAX_JOINS);
    for (i = 0; i < n; i++) {
        fds[i] = open(p->joins[i].path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            rc = pyrt_fail(sync_fd, "setns", errno, "open %s namespace %s",
                           ns_name(p->joins[i].type), p->joins[i].path);
            break;
        }
    }
    n = i;
    for (i = 0; rc == 0 && i < n; i++) {
        if (setns(fds[i], p->joins[i].type) < 0)
            rc = pyrt_fail(sync_fd, "setns", errno, "join %s namespace %s",
                           ns_name(p->joins[i].type), p->joins[i].path);
        /*
         * In a joined user namespace our host ids may be unmapped: become its
         * root (as runc does) so the init's files get real owners, not EOVERFLOW.
         */
        else if (p->joins[i].type == CLONE_NEWUSER &&
                 (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
            rc = pyrt_fail(sync_fd, "setns", errno, "become root in the user namespace %s",
                           p->joins[i].path);
    }
    for (i = 0; i < n; i++)
        close(fds[i]);
    return rc;
}

/* The kernel wants each of these files written in a single write(). */
static int write_proc(int proc_fd, pid_t pid, const char *file, const char *text, int sync_fd)
{
    char rel[64];
    size_t len = strlen(text);
    ssize_t n;
    int fd;

    snprintf(rel, sizeof rel, "%d/%s", (int)pid, file);
    fd = openat(proc_fd, rel, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return pyrt_fail_pid(sync_fd, pid, "id maps", errno, "open /proc/%s", rel);
    n = write(fd, text, len);
    if (n != (ssize_t)len) {
        int err = n < 0 ? errno : EIO;
        close(fd);
        return pyrt_fail_pid(sync_fd, pid, "id maps", err, "write /proc/%s \"%.200s\"", rel, text);
    }
    close(fd);
    return 0;
}

#define PYRT_MAX_MAP_ARGS 96

/*
 * A non-root caller's ranges (/etc/subuid, /etc/subgid): only the setuid
 * newuidmap/newgidmap may write them.  `text` is the map ("inner outer count"
 * lines), passed as arguments after the pid; the helper reports on stderr.
 */
static int run_map_tool(const char *tool, pid_t pid, const char *text, int sync_fd)
{
    char buf[4096], pidbuf[16];
    char *argv[PYRT_MAX_MAP_ARGS + 3];
    char *save = NULL, *tok;
    int argc = 0, status;
    pid_t child;

    if (strlen(text) >= sizeof buf)
        return pyrt_fail_pid(sync_fd, pid, "id maps", E2BIG, "%s: map too long", tool);
    strcpy(buf, text);
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
    argv[argc++] = (char *)tool;
    argv[argc++] = pidbuf;
    for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
        if (argc >= PYRT_MAX_MAP_ARGS + 2)
            return pyrt_fail_pid(sync_fd, pid, "id maps", E2BIG, "%s: too many ranges", tool);
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    child = fork();
    if (child < 0)
        return pyrt_fail_pid(sync_fd, pid, "id maps", errno, "fork for %s", tool);
    if (child == 0) {
        char *envp[] = { NULL };
        execve(tool, argv, envp);
        _exit(127);
    }
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR)
            return pyrt_fail_pid(sync_fd, pid, "id maps", errno, "waitpid %s", tool);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return pyrt_fail_pid(sync_fd, pid, "id maps", EPERM, "%s %d \"%.200s\" failed (status %d)",
                             tool, (int)pid, text, status);
    return 0;
}

/*
 * Written by stage1, which is in the parent user namespace of init's new one.
 * proc_fd is the caller's /proc, opened before any setns, so `pid` (a pid in
 * the caller's pid namespace) names init there.
 */
int pyrt_write_maps(int proc_fd, pid_t pid, const struct pyrt_plan *p, int sync_fd)
{
    if (p->deny_setgroups && write_proc(proc_fd, pid, "setgroups", "deny", sync_fd) < 0)
        return -1;
    if (p->gid_map && (p->newgidmap ? run_map_tool(p->newgidmap, pid, p->gid_map, sync_fd)
                                    : write_proc(proc_fd, pid, "gid_map", p->gid_map, sync_fd)) < 0)
        return -1;
    if (p->uid_map && (p->newuidmap ? run_map_tool(p->newuidmap, pid, p->uid_map, sync_fd)
                                    : write_proc(proc_fd, pid, "uid_map", p->uid_map, sync_fd)) < 0)
        return -1;
    return 0;
}

/*
 * init: block until stage1 has written the maps and reported our pid, so the
 * caller always sees PID before READY/ERROR.  EOF means stage1 failed (and
 * reported it): leave quietly.  With a new user namespace, become its root.
 */
int pyrt_wait_release(struct pyrt_ctx *c)
{
    char b;
    ssize_t n;

    do
        n = read(c->release_fd, &b, 1);
    while (n < 0 && errno == EINTR);
    close(c->release_fd);
    c->release_fd = -1;
    if (n != 1)
        _exit(1);
    if (c->plan->uid_map || c->plan->gid_map) {
        if (setresgid(0, 0, 0) < 0)
            return pyrt_fail(c->sync_fd, "id maps", errno, "setresgid(0) in the new user namespace");
        if (setresuid(0, 0, 0) < 0)
            return pyrt_fail(c->sync_fd, "id maps", errno, "setresuid(0) in the new user namespace");
    }
    return 0;
}
