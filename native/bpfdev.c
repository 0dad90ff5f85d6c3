/*
 * bpfdev.c - the cgroup v2 device filter: load a BPF_PROG_TYPE_CGROUP_DEVICE program
 * and attach it to a cgroup directory (mechanism only: the program is written by
 * pyruntime/cgroups/devicefilter.py from linux.resources.devices).
 *
 * Called by the Python caller (not in a child), after it made the container's cgroup
 * and before init is cloned into it, so init never runs unfiltered.  The new program
 * is attached (BPF_F_ALLOW_MULTI) before the device programs that were attached to the
 * directory are detached, as runc does, so there is no moment without a filter; a
 * fresh directory has none.  The attachment holds the program: its fd is closed here,
 * and the kernel frees it when the cgroup goes.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrt.h"

#define MAX_OLD_PROGS 64

static int bpf(int cmd, union bpf_attr *attr)
{
    long rc;

    do
        rc = syscall(SYS_bpf, cmd, attr, sizeof(*attr));
    while (rc < 0 && errno == EINTR);
    return (int)rc;
}

static int note(char *log, size_t loglen, const char *what, int err)
{
    if (log && loglen)
        snprintf(log, loglen, "%s: %s", what, strerror(err));
    return -err;
}

static int load(const uint8_t *insns, size_t len, const char *license, char *log,
                size_t loglen)
{
    union bpf_attr attr;
    int fd;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)(len / sizeof(struct bpf_insn));
    attr.license = (uint64_t)(uintptr_t)license;
    fd = bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0 || !log || loglen < 2)
        return fd < 0 ? note(log, loglen, "BPF_PROG_LOAD", errno) : fd;
    /* again with the verifier's log, for the error message only (a log that does
       not fit would fail the load with ENOSPC on its own) */
    int err = errno;

    log[0] = '\0';
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = (uint32_t)(loglen > 0xFFFFFFu ? 0xFFFFFFu : loglen);
    attr.log_level = 1;
    fd = bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) /* cannot be, but then it is loaded */
        return fd;
    log[loglen - 1] = '\0';
    if (!log[0])
        note(log, loglen, "BPF_PROG_LOAD", err);
    return -err;
}

int pyrt_attach_device_filter(int32_t cgroup_fd, const uint8_t *insns, size_t len,
                              const char *license, char *log, size_t loglen)
{
    uint32_t old[MAX_OLD_PROGS];
    union bpf_attr attr;
    uint32_t n_old, i;
    int prog, err;

    if (log && loglen)
        log[0] = '\0';
    if (len == 0 || len % sizeof(struct bpf_insn))
        return note(log, loglen, "device filter", EINVAL);
    prog = load(insns, len, license, log, loglen);
    if (prog < 0)
        return prog;

    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)cgroup_fd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = (uint64_t)(uintptr_t)old;
    attr.query.prog_cnt = MAX_OLD_PROGS;
    if (bpf(BPF_PROG_QUERY, &attr) < 0) {
        err = errno;
        close(prog);
        return note(log, loglen, "BPF_PROG_QUERY", err);
    }
    n_old = attr.query.prog_cnt;

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (bpf(BPF_PROG_ATTACH, &attr) < 0) {
        err = errno;
        close(prog);
        return note(log, loglen, "BPF_PROG_ATTACH", err);
    }
    close(prog);

    for (i = 0; i < n_old && i < MAX_OLD_PROGS; i++) {
        int fd;

        memset(&attr, 0, sizeof(attr));
        attr.prog_id = old[i];
        fd = bpf(BPF_PROG_GET_FD_BY_ID, &attr);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* gone meanwhile */
            return note(log, loglen, "BPF_PROG_GET_FD_BY_ID (the old device filter)",
                        errno);
        }
        memset(&attr, 0, sizeof(attr));
        attr.target_fd = (uint32_t)cgroup_fd;
        attr.attach_bpf_fd = (uint32_t)fd;
        attr.attach_type = BPF_CGROUP_DEVICE;
        err = bpf(BPF_PROG_DETACH, &attr) < 0 ? errno : 0;
        close(fd);
        if (err && err != ENOENT)
            return note(log, loglen, "BPF_PROG_DETACH (the old device filter)", err);
    }
    return 0;
}

int pyrt_device_filter_count(int32_t cgroup_fd)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)cgroup_fd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    if (bpf(BPF_PROG_QUERY, &attr) < 0)
        return -errno;
    return (int)attr.query.prog_cnt;
}
