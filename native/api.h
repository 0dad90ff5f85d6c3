/*
 * api.h - the one contract between pyruntime's Python policy and its C mechanism.
 *
 * Python validates config.json and resolves every decision into this flat plan;
 * C only carries it out between clone and execve.  This file is read twice: by the
 * C compiler and by cffi's cdef (so: plain declarations only, no macros, no includes,
 * fixed-width types that cffi knows).
 *
 * Process chain (see spawn.c):
 *   caller (python) --clone--> stage1 --clone3(CLONE_PARENT|clone_flags)--> init
 *   stage1 joins the namespaces given by path (setns), clones init as a child of the
 *   caller, writes init's uid/gid maps when a user namespace is new, reports init's
 *   pid on the sync socket, and exits.  init sets the container up and reports READY
 *   (or ERROR), then blocks opening exec_fifo for writing until `start` opens it.
 *   From then on the fifo is init's error channel: an ERROR is written to it as one
 *   struct pyrt_msg, and a successful execve closes it (EOF with no data).
 *
 * Sync protocol: SOCK_SEQPACKET, one struct pyrt_msg per packet, child -> caller.
 * Python reads and writes it through cffi (pyruntime/spawn.py): its layout, the message
 * types and the sizes below are defined here only.
 */

struct pyrt_msg {
    int32_t type;        /* PYRT_MSG_* below */
    int32_t pid;         /* PID: init's pid in the caller's pid namespace; ERROR from
                            stage1: init's pid if it was already cloned (stage1 killed
                            it; the caller must reap it), else 0 */
    int32_t err;         /* ERROR: errno (0 if none) */
    char step[64];       /* ERROR: the step that failed, e.g. "mount /proc" */
    char text[436];      /* ERROR: detail, e.g. the path; may be empty */
};                       /* 512 bytes */

enum pyrt_msg_type {
    PYRT_MSG_PID = 1,    /* stage1 -> caller: init was cloned, .pid set */
    PYRT_MSG_READY = 2,  /* init -> caller: setup done, now waiting on exec_fifo */
    PYRT_MSG_ERROR = 3,  /* stage1 or init -> caller: setup failed; sender exits */
    PYRT_MSG_HOOKS = 4,  /* init -> caller (plan.hooks_pause): namespaces and mounts ready,
                            before pivot_root; init waits for CONTINUE (hooks.c) */
    PYRT_MSG_CONTINUE = 5, /* caller -> init, answering HOOKS: .pid is init's pid as the
                            caller sees it; the packet goes on with the state JSON that
                            startContainer hooks get on stdin (PYRT_HOOK_STATE_MAX) */
    PYRT_MSG_HANDOVER = 6 /* caller -> init after READY, once the state is saved (a plan
                            with exec_fifo and without lifeline_until_start); init cuts
                            its lifeline and answers HANDOVER (lifeline.c) */
};

enum {
    PYRT_HOOK_STATE_MAX = 65536 /* bytes of state JSON a CONTINUE may carry */
};

enum pyrt_dest_kind {
    PYRT_DEST_DIR = 0,   /* create the mount destination as a directory if missing */
    PYRT_DEST_FILE = 1   /* ... as an empty regular file (bind of a non-directory) */
};

struct pyrt_ns_join {
    int32_t type;        /* one CLONE_NEW* flag */
    const char *path;    /* e.g. /proc/123/ns/net */
};

struct pyrt_mount {
    const char *source;        /* NULL allowed; host path for binds (absolute) */
    const char *destination;   /* absolute path inside the container */
    const char *fstype;        /* NULL for bind mounts */
    unsigned long flags;       /* MS_* for mount(2); MS_BIND(|MS_REC) for binds */
    unsigned long propagation; /* MS_SHARED/MS_PRIVATE/MS_SLAVE/MS_UNBINDABLE(|MS_REC), 0: none */
    const char *data;          /* filesystem option string, NULL allowed */
    int32_t dest_kind;         /* enum pyrt_dest_kind */
    uint64_t rec_attr_set;     /* MOUNT_ATTR_* set with mount_setattr(AT_RECURSIVE) last (rro...) */
    uint64_t rec_attr_clr;     /* MOUNT_ATTR_* cleared likewise (rrw...) */
    int32_t idmap_tree_fd;     /* idmapped bind: the detached, idmapped tree the caller made
                                  (pyrt_idmapped_tree: the caller owns the filesystem's user
                                  namespace, a container root does not); init attaches it at
                                  the destination (move_mount) and closes it.  -1: none.
                                  Set it always: 0 is an fd */
    int32_t tmpcopyup;         /* tmpfs: copy what it covers into it */
    int32_t keep_dir_mode;     /* the new mount's root takes the mode of the directory it
                                  covers, if that existed (tmpfs without mode=) */
};

struct pyrt_hook {
    const char *path;            /* absolute */
    const char *const *argv;     /* NULL-terminated; argv[0] as given */
    const char *const *envp;     /* NULL-terminated */
    int32_t timeout;             /* seconds; 0: none */
};

struct pyrt_sysctl {
    const char *path;            /* below /proc/sys, e.g. "net/ipv4/ip_forward" */
    const char *value;
};

struct pyrt_device {
    const char *path;          /* absolute inside the container, e.g. /dev/null */
    uint32_t mode;             /* S_IFCHR / S_IFBLK / S_IFIFO | permission bits */
    uint32_t major;
    uint32_t minor;
    uint32_t uid;
    uint32_t gid;
    int32_t bind_from_host;    /* 1: bind-mount the host's node (user namespaces) */
};

struct pyrt_symlink {
    const char *target;        /* what the link points to, e.g. /proc/self/fd */
    const char *linkpath;      /* absolute inside the container, e.g. /dev/fd */
};

struct pyrt_rlimit {
    int32_t resource;          /* RLIMIT_* */
    const char *name;          /* "RLIMIT_NOFILE", for error messages */
    uint64_t soft;
    uint64_t hard;
};

/*
 * seccomp: compiled in the caller (seccomp.c, libseccomp), loaded by init (seccomp_load.c).
 * Python fills every value: actions are SCMP_ACT_* numbers with their data (errno, trace
 * code), conditions of one rule are AND-ed (rules for the same name are OR-ed).
 */
struct pyrt_seccomp_arg {
    uint32_t index;            /* syscall argument 0..5 */
    uint32_t op;               /* enum scmp_compare: SCMP_CMP_NE 1 .. SCMP_CMP_MASKED_EQ 7 */
    uint64_t value;            /* datum_a (the mask for MASKED_EQ) */
    uint64_t value_two;        /* datum_b */
};

struct pyrt_seccomp_rule {
    const char *name;          /* syscall name, resolved for the native architecture */
    uint32_t action;           /* SCMP_ACT_* value */
    const struct pyrt_seccomp_arg *args;
    size_t n_args;             /* 0: unconditional */
};

struct pyrt_seccomp_profile {
    uint32_t default_action;   /* SCMP_ACT_* value */
    const char *const *archs;  /* libseccomp names ("x86_64", "x86", "x32"), besides the native */
    size_t n_archs;
    const struct pyrt_seccomp_rule *rules;
    size_t n_rules;
    int32_t optimize;          /* binary-tree syscall dispatch (long profiles, as runc) */
    int32_t *unknown;          /* out, n_rules entries (may be NULL): 1 where the name is not a
                                  syscall of the native architecture (the rule is skipped) */
};

struct pyrt_seccomp_result {
    int32_t err;               /* errno (positive), 0: ok */
    int32_t rule;              /* index of the rule libseccomp refused, -1: none */
    int32_t n_unknown;         /* rules skipped for an unknown name */
    char what[160];            /* the failed call */
};

struct pyrt_plan {
    /* namespaces */
    int32_t clone_flags;                 /* CLONE_NEW* to create */
    const struct pyrt_ns_join *joins;    /* namespaces to join by path, in this order */
    size_t n_joins;
    const char *uid_map;                 /* text for /proc/PID/uid_map; NULL: none */
    const char *gid_map;                 /* text for /proc/PID/gid_map; NULL: none */
    int32_t deny_setgroups;              /* write "deny" to /proc/PID/setgroups first */
    const char *newuidmap;               /* non-NULL: uid_map is written by this setuid */
    const char *newgidmap;               /* helper (ranges for a non-root caller) */

    /* filesystem */
    const char *rootfs;                  /* absolute host path; NULL: no filesystem setup at all
                                            (exec into a running container) */
    unsigned long root_propagation_pre;  /* mount("", "/", pre) before setup, e.g. MS_SLAVE|MS_REC */
    unsigned long root_propagation_post; /* mount("", "/", post) after pivot_root; 0: none */
    int32_t no_pivot;                    /* MS_MOVE + chroot instead of pivot_root */
    int32_t readonly_root;               /* remount / read-only at the end */
    const struct pyrt_mount *mounts;     /* in order */
    size_t n_mounts;
    const struct pyrt_device *devices;   /* created after the mounts */
    size_t n_devices;
    const struct pyrt_symlink *symlinks; /* created after the devices */
    size_t n_symlinks;
    const char *const *masked_paths;     /* after pivot_root */
    size_t n_masked;
    const char *const *readonly_paths;   /* after pivot_root */
    size_t n_readonly;
    const char *hostname;                /* NULL: leave */
    const char *domainname;              /* NULL: leave */
    int32_t loopback_up;                 /* bring "lo" up (new net namespace) */

    /* process */
    const char *const *argv;             /* NULL-terminated, argv[0] as given */
    const char *const *envp;             /* NULL-terminated */
    const char *path_search;             /* PATH used to resolve argv[0] without '/'; NULL: none */
    const char *cwd;                     /* absolute inside the container */
    int32_t mkdir_cwd;                   /* create a missing cwd (0755) inside the rootfs */
    uint32_t uid;
    uint32_t gid;
    int32_t set_groups;                  /* call setgroups(n_groups, groups) */
    const uint32_t *groups;
    size_t n_groups;
    int32_t umask;                       /* -1: leave */
    int32_t set_caps;                    /* apply the five sets below */
    uint64_t cap_bounding;
    uint64_t cap_effective;
    uint64_t cap_permitted;
    uint64_t cap_inheritable;
    uint64_t cap_ambient;
    int32_t last_cap;                    /* /proc/sys/kernel/cap_last_cap */
    int32_t no_new_privs;
    const struct pyrt_rlimit *rlimits;
    size_t n_rlimits;
    int32_t set_oom_score_adj;
    int32_t oom_score_adj;
    int32_t console_fd;                  /* process.terminal: the connected console socket; init
                                            sends the pty master to it (console.c); -1: no
                                            terminal.  Set it always: 0 is an fd */
    uint16_t console_rows;               /* process.consoleSize; 0 and 0: leave */
    uint16_t console_cols;

    /* process attributes (sched.c), set by init before READY */
    int32_t set_personality;
    uint32_t personality;                /* PER_LINUX / PER_LINUX32 | flags */
    int32_t set_ioprio;
    int32_t ioprio;                      /* class << 13 | level */
    int32_t set_scheduler;               /* sched_setattr with the fields below */
    uint32_t sched_policy;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_flags;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
    int32_t set_mempolicy;
    int32_t mempolicy_mode;              /* MPOL_* | MPOL_F_* */
    uint32_t mempolicy_maxnode;          /* bits in mempolicy_nodes; 0: NULL mask */
    uint64_t mempolicy_nodes[16];
    const char *timens_offsets;          /* "monotonic S N\nboottime S N\n": stage1 unshares a
                                            time namespace, writes them, init starts in it
                                            (timens.c); NULL: none */

    /* lifecycle */
    const char *exec_fifo;               /* host path; opened O_PATH before pivot_root; NULL: exec
                                            right after READY */
    int32_t preserve_fds;                /* fds 3 .. 3+N-1 stay open across execve */
    int32_t lifeline_until_start;        /* init dies with the caller until start (foreground
                                            run), else (create) until the caller's HANDOVER
                                            after READY: lifeline.c */
    int32_t sync_fd;                     /* child end of the sync socketpair; must be >= 3+preserve_fds */

    /* cgroups: made and configured by the caller; init never runs outside them */
    int32_t cgroup_fd;                   /* a cgroup2 directory fd (v2, or the unified
                                            hierarchy of a hybrid host): init is cloned into it
                                            (clone3 CLONE_INTO_CGROUP); -1: none. Set it
                                            always: 0 is an fd */
    const char *const *cgroup_procs;     /* files stage1 writes itself ("0") into first thing,
                                            so init inherits them: v1 hierarchies' `tasks`
                                            (stage1 is one thread; cgroup.procs would take the
                                            global threadgroup lock, an RCU grace period) */
    size_t n_cgroup_procs;
    const char *cgroup_fd_procs;         /* cgroup.procs of cgroup_fd's directory, written by
                                            stage1 if the kernel refuses CLONE_INTO_CGROUP */

    /* hooks (hooks.c) and sysctl (sysctl.c) */
    int32_t hooks_pause;                 /* send HOOKS before pivot_root, wait for CONTINUE */
    const struct pyrt_hook *start_hooks; /* startContainer: run by init after start, before
                                            execve, in the container, with the caller's state
                                            JSON on stdin */
    size_t n_start_hooks;
    const struct pyrt_sysctl *sysctls;   /* written after pivot_root via a private procfs */
    size_t n_sysctls;

    /* seccomp (seccomp_load.c): with no_new_privs last before execve, after `start`;
       without, before READY, after the credentials, which keep CAP_SYS_ADMIN for the
       load and drop it right after (init.c, creds.c) */
    const uint8_t *seccomp_bpf;          /* struct sock_filter[] from pyrt_seccomp_compile; NULL:
                                            no filter */
    size_t seccomp_bpf_len;              /* bytes, a multiple of 8 */
    uint32_t seccomp_flags;              /* SECCOMP_FILTER_FLAG_* for seccomp(2); NEW_LISTENER
                                            when an action is NOTIFY */
    const char *seccomp_listener;        /* NEW_LISTENER: AF_UNIX stream socket path, connected
                                            before pivot_root; the listener fd goes to it */
    const char *const *seccomp_state;    /* NEW_LISTENER: the container process state JSON in
                                            pieces; init sends piece, pid, piece, pid, ... piece
                                            (pid: init's pid in the caller's pid namespace) */
    size_t n_seccomp_state;
};

/*
 * Clone stage1 (which clones init) and wait for stage1 to exit.
 * Returns 0 when stage1 exited cleanly (the caller then reads PID, then READY or
 * ERROR, from its end of the socketpair), or -errno if stage1 could not be
 * cloned or died abnormally.  Never returns in the children.
 */
int pyrt_spawn(const struct pyrt_plan *plan);

/*
 * A user namespace with these maps (/proc/PID/{uid,gid}_map text), for
 * idmapped mounts.  Returns an O_RDONLY|O_CLOEXEC fd of it, or -errno.
 */
int pyrt_userns_fd(const char *uid_map, const char *gid_map);

/*
 * Clone the tree at `source` (every mount below it too if `recursive`) detached, and
 * idmap it (every mount of it if `idmap_recursive`) with the user namespace userns_fd.
 * Returns an O_CLOEXEC fd of the tree for pyrt_mount.idmap_tree_fd, or -errno.
 */
int pyrt_idmapped_tree(const char *source, int32_t recursive, int32_t idmap_recursive,
                       int32_t userns_fd);

/*
 * For reading a file of a container's filesystem from the host (its /etc/passwd):
 * `path` resolved inside the directory root_fd as if it were "/" (symlinks and ".."
 * clamped to it, no /proc magic links), opened O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC.
 * Returns the fd, or -errno.
 */
int pyrt_open_read_in_root(int32_t root_fd, const char *path);

/*
 * hooks.c: run one hook process to its end, the one way every kind of hook
 * runs.  cwd: its working directory, opened as the caller sees it before the
 * namespaces are joined and entered after (NULL: the caller's); ns_flags
 * (CLONE_NEW*): join those namespaces of process ns_pid (0: none); state:
 * written to its stdin.  Returns 0 once it has ended
 * (result->status; ->timed_out if h->timeout killed it) or -1 if it could not
 * run (result->error, result->step).
 */
enum { PYRT_HOOK_OUTPUT_MAX = 200 };
struct pyrt_hook_result {
    int32_t status;              /* its wait status */
    int32_t timed_out;           /* killed at h->timeout */
    int32_t error;               /* with -1: the errno of the step that failed */
    const char *step;            /* that step: "cwd", "setns", "exec", ... */
    char output[201];            /* its stdout+stderr's start, whitespace runs squeezed to
                                    one space: at most PYRT_HOOK_OUTPUT_MAX bytes + NUL */
};
int pyrt_hook_run(const struct pyrt_hook *h, const char *cwd, int32_t ns_pid,
                  int32_t ns_flags, const char *state, size_t state_len,
                  struct pyrt_hook_result *result);

/* namespaces.c: the /proc/PID/ns file name of one CLONE_NEW* flag, NULL if it is none;
   pyruntime/plan/linux_consts.py's NAMESPACES must name the same (tests/test_namespaces.py). */
const char *pyrt_ns_file(int32_t flag);

/*
 * seccomp.c, called by Python (not in a child): compile `profile` into BPF written to
 * out_fd.  Returns 0 or -errno with `result` naming the failed call (and rule).
 */
int pyrt_seccomp_compile(const struct pyrt_seccomp_profile *profile, int out_fd,
                         struct pyrt_seccomp_result *result);
/* libseccomp's version and the kernel's seccomp API level: major, minor, micro, api. */
void pyrt_seccomp_version(uint32_t out[4]);

/*
 * bpfdev.c, called by Python (not in a child): load the BPF_PROG_TYPE_CGROUP_DEVICE
 * program `insns` (struct bpf_insn[], len bytes, from pyruntime/cgroups/devicefilter.py)
 * and attach it to the cgroup directory cgroup_fd (BPF_F_ALLOW_MULTI), then detach the
 * device programs attached there before.  Returns 0 or -errno; `log` (may be NULL) then
 * holds the verifier's log or the failed bpf(2) command.
 */
int pyrt_attach_device_filter(int32_t cgroup_fd, const uint8_t *insns, size_t len,
                              const char *license, char *log, size_t loglen);
/* How many device programs are attached to the cgroup directory cgroup_fd, or -errno. */
int pyrt_device_filter_count(int32_t cgroup_fd);

/*
 * arena.c, called by a served worker (pyruntime/served/arena.py): map `len` bytes of the
 * memfd `fd`, shared, at exactly `addr`.  The worker lays a struct pyrt_plan out there and
 * the `pyruntime` client (native/client/) maps the same pages at the same address, so the
 * plan's pointers hold in both.  Returns 0 or -errno (EEXIST: something is mapped there).
 */
int pyrt_map_at(int32_t fd, size_t len, uint64_t addr);

/*
 * lifeline.c, for a served worker waiting for a call (pyruntime/served/server.py): get
 * `sig` when the process that forked this one exits; 0 turns it off again.  Fails with
 * -ESRCH if that parent is already gone (not `parent`).  Returns 0 or -errno.
 */
int pyrt_parent_death_signal(int32_t sig, int32_t parent);
