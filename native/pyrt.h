/*
 * pyrt.h - internal declarations shared by the native files.
 *
 * Everything here runs in a forked copy of the Python caller (stage1, init):
 * only plain syscalls and fork-safe libc calls, no malloc, no stdio streams.
 *
 * Error convention: a step function reports its own failure on the sync
 * socket with pyrt_fail() (step, errno, one-line text naming the object) and
 * returns -1; the caller just propagates -1 and finally _exit()s.  The safepath
 * helpers are the exception: they return -1 with errno set and let the caller
 * report, because only the caller knows what the path was for.
 */
#ifndef PYRT_H
#define PYRT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "api.h"

#define PYRT_FDPATH_LEN 32 /* "/proc/self/fd/" + an int */
#define PYRT_SRC_BATCH 32  /* bind-mount source fds per message (mountsrc.c) */

/* State carried through stage1 and init; lives on the child's stack. */
struct pyrt_ctx {
    const struct pyrt_plan *plan;
    int sync_fd;      /* plan->sync_fd */
    int release_fd;   /* init: read end of stage1's release pipe */
    int fifo_fd;      /* init: exec fifo opened O_PATH, -1 if none */
    int caller_fd;    /* init: pidfd of the caller (lifeline.c), -1 if none */
    int root_fd;      /* init: O_PATH fd of the container root, -1 if none */
    int root_bound;   /* init: the rootfs is bound onto itself (rootfs.c) */
    char exe[4096];   /* init: argv[0] resolved against path_search */
    int listener_fd;  /* init: socket to seccomp_listener, -1 if none (seccomp_load.c) */
    pid_t host_pid;   /* init: its pid in the caller's pid namespace (seccomp_load.c) */
    dev_t self_dev;   /* init: identity of the runtime's executable (exesafe.c) */
    ino_t self_ino;
    int self_known;
    int src_sock;     /* init: socket of the bind-mount sources stage1 opened, -1 if none */
    int src_fds[PYRT_SRC_BATCH]; /* init: received, not yet used (mountsrc.c) */
    int src_n, src_next;
    uint64_t cap_final[3]; /* init: effective, permitted, inheritable after the filter (creds.c) */
    int admin_kept;   /* init: CAP_SYS_ADMIN kept for a seccomp load, to drop after it */
    int cwd_pending;  /* init: chdir refused before the credentials, retried after (exec.c) */
};

/* spawn.c: signal handlers and mask back to their defaults (a fork of Python has its own) */
void pyrt_default_signals(void);

/* sync.c: messages to the caller */
int pyrt_send(int fd, int32_t type, int32_t pid);
int pyrt_send_write(int fd, int32_t type); /* the same by write(2) (init's READY) */
ssize_t pyrt_send_fd(int sock, int fd, struct iovec *iov, size_t niov); /* SCM_RIGHTS */
int pyrt_fail(int fd, const char *step, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));   /* text + ": strerror(err)" */
int pyrt_failx(int fd, const char *step, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));   /* text as given, err only in .err */
int pyrt_fail_pid(int fd, int32_t pid, const char *step, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));   /* like pyrt_fail, sets .pid */
/* init: keep the first failure until pyrt_send_held_failure (after its cleanup) */
void pyrt_hold_failures(void);
void pyrt_send_held_failure(void);

/* safepath.c: paths inside the container root (fds are O_PATH|O_CLOEXEC) */
void pyrt_fdpath(char buf[PYRT_FDPATH_LEN], int fd);
int pyrt_open_in_root(int root_fd, const char *path, uint64_t resolve);
int pyrt_mkpath_in_root(int root_fd, const char *path, int kind, uint64_t resolve,
                        int dangling); /* follow dangling symlinks, creating their targets */
int pyrt_open_parent(int root_fd, const char *path, char *name, size_t name_len);
unsigned long pyrt_locked_flags(int fd);   /* MS_* equivalents of fstatvfs flags */

/* namespaces.c */
struct pyrt_ns_kind {
    int32_t flag;       /* CLONE_NEW* */
    const char *file;   /* in /proc/PID/ns/ */
};
#define PYRT_N_NS 8
extern const struct pyrt_ns_kind pyrt_ns_kinds[PYRT_N_NS]; /* namespaces.c */
int pyrt_join_namespaces(const struct pyrt_plan *p, int sync_fd);
int pyrt_write_maps(int proc_fd, pid_t pid, const struct pyrt_plan *p, int sync_fd);
int pyrt_wait_release(struct pyrt_ctx *c);

/* rootfs.c */
int pyrt_own_mount_ns(const struct pyrt_plan *p);
int pyrt_prepare_root(struct pyrt_ctx *c);
void pyrt_rootfs_cleanup(struct pyrt_ctx *c);
int pyrt_pivot_root(struct pyrt_ctx *c);
int pyrt_root_propagation_post(struct pyrt_ctx *c);
int pyrt_mask_paths(struct pyrt_ctx *c);
int pyrt_reopen_dev_null(struct pyrt_ctx *c);
int pyrt_readonly_paths(struct pyrt_ctx *c);
int pyrt_readonly_root(struct pyrt_ctx *c);

/* mounts.c */
int pyrt_do_mounts(struct pyrt_ctx *c);

/* devices.c */
int pyrt_make_devices(struct pyrt_ctx *c);
int pyrt_make_symlinks(struct pyrt_ctx *c);

/* process.c: container-wide attributes */
int pyrt_set_names(struct pyrt_ctx *c);
int pyrt_loopback_up(struct pyrt_ctx *c);
int pyrt_set_rlimits(struct pyrt_ctx *c);
int pyrt_stage1_oom_score_adj(const struct pyrt_plan *p, int proc_fd, int sync_fd); /* stage1 */

/* console.c: process.terminal */
int pyrt_setup_console(struct pyrt_ctx *c);

/* sched.c: personality, ioprio, scheduler, memory policy */
int pyrt_set_sched_attrs(struct pyrt_ctx *c);

/* timens.c: stage1, before cloning init */
int pyrt_setup_timens(const struct pyrt_plan *p, int sync_fd);

/* creds.c: groups, ids, capabilities, umask, no_new_privs */
int pyrt_set_creds(struct pyrt_ctx *c, int keep_admin); /* keep CAP_SYS_ADMIN for the filter */
int pyrt_drop_admin(struct pyrt_ctx *c);                /* after that load */

/* exec.c */
int pyrt_make_cwd(struct pyrt_ctx *c);
int pyrt_enter_cwd(struct pyrt_ctx *c, int after_creds);
int pyrt_resolve_exe(struct pyrt_ctx *c);
int pyrt_check_fifo(struct pyrt_ctx *c);
int pyrt_wait_fifo(struct pyrt_ctx *c);
int pyrt_prepare_fds(struct pyrt_ctx *c);
void pyrt_exec(struct pyrt_ctx *c) __attribute__((noreturn));

/* cgroup.c */
int pyrt_join_cgroups(const struct pyrt_plan *p, int sync_fd);
int pyrt_join_cgroup2_fallback(const struct pyrt_plan *p, int sync_fd);

/* hooks.c */
int pyrt_hooks_pause(struct pyrt_ctx *c);
int pyrt_run_start_hooks(struct pyrt_ctx *c);

/* sysctl.c */
int pyrt_set_sysctls(struct pyrt_ctx *c);

/* procfs.c: /proc writes through a private procfs (CVE-2025-52881); report their failure */
int pyrt_private_proc(struct pyrt_ctx *c, const char *step); /* fd of its root, or -1 */
int pyrt_proc_self(struct pyrt_ctx *c, int proc_fd, const char *step, char *buf, size_t len);
int pyrt_proc_write(struct pyrt_ctx *c, int proc_fd, const char *step, const char *rel,
                    const char *value);

/* mountsrc.c: bind-mount sources, opened by stage1 and used by init in mount order */
int pyrt_wants_source_fd(const struct pyrt_mount *m);
int pyrt_needs_source_fds(const struct pyrt_plan *p);
int pyrt_send_mount_sources(const struct pyrt_plan *p, int proc_fd, pid_t pid, int sock, int join);
int pyrt_source_helper_needed(const struct pyrt_plan *p); /* a user namespace is joined */
pid_t pyrt_source_helper_start(const struct pyrt_plan *p, int proc_fd, int sock, int *go_fd);
void pyrt_source_helper_abort(pid_t helper, int go_fd);
int pyrt_source_helper_finish(const struct pyrt_plan *p, pid_t helper, int go_fd, pid_t pid);
int pyrt_next_mount_source(struct pyrt_ctx *c, const struct pyrt_mount *m);
void pyrt_close_mount_sources(struct pyrt_ctx *c);

/* mountattr.c, copyup.c */
int pyrt_setattr(int fd, int recursive, uint64_t set, uint64_t clr, int userns_fd);
int pyrt_attach_tree(int tree_fd, int tfd);
int pyrt_copy_up(int src_fd, int dst_fd);

/* exesafe.c: never execute the runtime's own binary (CVE-2019-5736) */
int pyrt_note_runtime_exe(struct pyrt_ctx *c);
int pyrt_refuse_runtime_exe(struct pyrt_ctx *c);

/* seccomp_load.c */
int pyrt_seccomp_prepare(struct pyrt_ctx *c);
int pyrt_load_seccomp(struct pyrt_ctx *c);

/* lifeline.c: the init dies with its caller until the hand-over */
int pyrt_lifeline_arm(struct pyrt_ctx *c);
int pyrt_lifeline_rearm(struct pyrt_ctx *c); /* after a change of uid, which clears it */
int pyrt_lifeline_cut(struct pyrt_ctx *c);
int pyrt_lifeline_handover(struct pyrt_ctx *c); /* after READY: wait for HANDOVER, cut */
int pyrt_lifeline_handed_over(const struct pyrt_plan *p); /* does the plan get a HANDOVER */

/* init.c */
void pyrt_init(const struct pyrt_plan *p, int release_fd, int fifo_fd, int caller_fd,
               int src_sock) __attribute__((noreturn));

#endif
