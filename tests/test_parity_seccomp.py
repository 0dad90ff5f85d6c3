"""A seccomp profile that allows only what the container's program needs (and what runc's
own init needs after its load), not the runtime's last syscalls: the runtime must make
none the profile denies once the filter is in, except execve.

The profiles deny by default (SCMP_ACT_ERRNO) and never allow close_range; the
no_new_privs ones also keep prctl to PR_GET_NAME (busybox asks for its name) and leave
out capset, setuid, setgroups, chdir.  Each bundle runs under pyruntime and under runc
(run, create+start, exec); both must succeed and print the same.  Tests marked
pyruntime-only go further than runc can: runc 1.1.5's Go init makes a dozen more calls
after a load without no_new_privs.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from support import Runtime
from support.runc import AGAINST_RUNC, runc_runtime

pytestmark = AGAINST_RUNC

# `busybox sh -c '...; id'`, `busybox sleep`, as strace shows them (static glibc)
PROGRAM = """
arch_prctl brk clone close execve exit exit_group getegid geteuid getgid getgroups getpid
getppid getrandom getuid ioctl mmap mprotect munmap newfstatat openat prlimit64 read
readlink rseq rt_sigaction rt_sigprocmask rt_sigreturn sendfile set_robust_list
set_tid_address uname wait4 write nanosleep clock_nanosleep
""".split()
# runc 1.1.5's init after a load with no_new_privs: the Go runtime, closing its fds
RUNC_NNP = """
epoll_ctl epoll_pwait futex sched_yield tgkill gettid sigaltstack madvise fstatfs getdents64
""".split()
# ... and without: the credentials, chdir and the exec fifo come after its load too
RUNC_PLAIN = RUNC_NNP + """
capget capset chdir faccessat fcntl fstat getcwd prctl setgid setgroups setuid
""".split()
PR_GET_NAME = 16
SCRIPT = "echo hi; id; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status"
CAP_EFF = "CapEff:\t0000000020000420"  # the bundle's: AUDIT_WRITE KILL NET_BIND_SERVICE


def profile(extra: list[str]) -> dict:
    assert "close_range" not in extra
    rules = [{"names": sorted(set(PROGRAM + extra)), "action": "SCMP_ACT_ALLOW"}]
    if "prctl" not in extra:
        rules.append({"names": ["prctl"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": PR_GET_NAME, "op": "SCMP_CMP_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "architectures": ["SCMP_ARCH_X86_64"], "syscalls": rules}


def make(bundle, nnp: bool, extra: list[str], args: list[str], uid: int = 0):
    b = bundle(args)
    p = b.config["process"]
    p["noNewPrivileges"] = nnp
    p["user"] = {"uid": uid, "gid": uid}
    b.config["linux"]["seccomp"] = profile(extra)
    return b.write()


def check(out: str, uid: int, nnp: bool) -> None:
    """The program ran as uid with the bundle's capabilities (CAP_SYS_ADMIN, kept for
    the load, dropped after it), no_new_privs as asked, under a filter."""
    name = "(root)" if uid == 0 else ""
    eff = CAP_EFF if uid == 0 else "CapEff:\t0000000000000000"  # no ambient: none at exec
    assert out.splitlines() == ["hi", f"uid={uid}{name} gid={uid}{name}", eff,
                                f"NoNewPrivs:\t{int(nnp)}", "Seccomp:\t2"], out


@pytest.mark.parametrize("uid", [0, 1000])
@pytest.mark.parametrize("nnp", [False, True])
def test_run_under_both(runtime: Runtime, bundle, tmp_path: Path, test_token: str,
                        nnp: bool, uid: int) -> None:
    b = make(bundle, nnp, RUNC_NNP if nnp else RUNC_PLAIN, ["sh", "-c", SCRIPT], uid)
    ours = runtime.run_bundle(b, "ours", check=False)
    with runc_runtime(tmp_path, test_token) as runc:
        theirs = runc.run_bundle(b, "theirs", check=False)
    assert theirs.returncode == 0, f"runc: {theirs.stderr}"
    assert ours.returncode == 0, f"pyruntime: {ours.stderr}"
    check(ours.stdout, uid, nnp)
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize("nnp", [False, True])
def test_create_start_and_exec_under_both(runtime: Runtime, bundle, tmp_path: Path,
                                          test_token: str, nnp: bool) -> None:
    b = make(bundle, nnp, RUNC_NNP if nnp else RUNC_PLAIN,
             ["sh", "-c", SCRIPT + "; exec sleep 600"])
    outs = []
    with runc_runtime(tmp_path, test_token) as runc:
        for rt, cid in ((runtime, "ours"), (runc, "theirs")):
            res = rt.create(b, cid, check=False)
            assert res.returncode == 0, f"{rt.cmd()[0]} create: {res.stderr}"
            res = rt.start(cid, check=False)
            assert res.returncode == 0, f"{rt.cmd()[0]} start: {res.stderr}"
            res = rt.run("exec", cid, "sh", "-c", SCRIPT)
            assert res.returncode == 0, f"{rt.cmd()[0]} exec: {res.stderr}"
            outs.append(res.stdout)
            rt.kill(cid, "KILL")
            rt.wait_status(cid, "stopped")
            outs.append(rt.output(cid))
            rt.delete(cid)
    check(outs[0], 0, nnp)
    check(outs[1], 0, nnp)
    assert outs[:2] == outs[2:]


def run_alone(runtime: Runtime, bundle, verb: str, uid: int, nnp: bool,
              extra: list[str]) -> None:
    """`run`, or create+start, or exec into a started container, under pyruntime only."""
    tail = "; exec sleep 600" if verb == "exec" else ""
    b = make(bundle, nnp, extra, ["sh", "-c", SCRIPT + tail], uid)
    if verb == "run":
        res = runtime.run_bundle(b, "c", check=False)
        assert res.returncode == 0, res.stderr
        check(res.stdout, uid, nnp)
        return
    runtime.create(b, "c")
    runtime.start("c")
    if verb == "exec":
        res = runtime.run("exec", "c", "sh", "-c", SCRIPT)
        assert res.returncode == 0, res.stderr
        check(res.stdout, uid, nnp)
        runtime.kill("c", "KILL")
    runtime.wait_status("c", "stopped")
    check(runtime.output("c"), uid, nnp)
    runtime.delete("c")


@pytest.mark.parametrize("verb", ["run", "create", "exec"])
@pytest.mark.parametrize("uid", [0, 1000])
def test_without_nnp_only_capset_after_the_load(runtime: Runtime, bundle, verb: str,
                                                uid: int) -> None:
    """pyruntime alone (runc 1.1.5 needs RUNC_PLAIN): without no_new_privs the only
    syscalls after the load are dropping CAP_SYS_ADMIN (capset), READY and the exec
    fifo (write, openat, close) and, for `run`, clearing the parent-death signal."""
    run_alone(runtime, bundle, verb, uid, False, ["capset"] + (["prctl"] if verb == "run" else []))


@pytest.mark.parametrize("verb", ["run", "create", "exec"])
def test_nnp_only_the_programs_syscalls(runtime: Runtime, bundle, verb: str) -> None:
    """pyruntime alone: with no_new_privs nothing but execve follows the load, so a
    profile of the program's own syscalls is enough (runc's Go init needs RUNC_NNP)."""
    run_alone(runtime, bundle, verb, 1000, True, [])
