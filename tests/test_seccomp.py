"""linux.seccomp: actions, errno, arguments, architectures, flags, NOTIFY, the filter cache.

Each test runs a busybox container under a small profile and shows the kernel acting on
it from inside: a denied syscall returns the profile's errno, KILL ends the process with
SIGSYS, LOG leaves an audit record, NOTIFY reaches an agent the test runs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from support import Runtime
from support.seccomp_profiles import docker_default_profile

pytestmark = pytest.mark.root

SIGSYS_EXIT = 128 + 31
MKDIR = ["mkdir", "mkdirat"]


@pytest.fixture(autouse=True)
def seccomp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private filter cache per test (the runtime inherits the environment)."""
    path = tmp_path / "seccomp-cache"
    monkeypatch.setenv("PYRUNTIME_SECCOMP_CACHE", str(path))
    return path


def profile(*syscalls: dict, default: str = "SCMP_ACT_ALLOW", **extra) -> dict:
    return {"linux": {"seccomp": {"defaultAction": default, "syscalls": list(syscalls),
                                  **extra}}}


def rule(names: list[str], action: str, **extra) -> dict:
    return {"names": names, "action": action, **extra}


def run(runtime: Runtime, bundle, script: str, overrides: dict, **kw):
    b = bundle(["sh", "-c", script], overrides, **kw)
    return runtime.run_bundle(b, "sc1", check=False)


def test_errno_action_returns_the_errno(runtime: Runtime, bundle) -> None:
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?; grep Seccomp: /proc/self/status",
              profile(rule(MKDIR, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV)))
    assert res.returncode == 0, res.stderr
    assert os.strerror(errno.EXDEV) in res.stderr
    assert "rc=1" in res.stdout
    assert re.search(r"Seccomp:\s+2", res.stdout)  # SECCOMP_MODE_FILTER


def test_errno_defaults_to_eperm(runtime: Runtime, bundle) -> None:
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?",
              profile(rule(MKDIR, "SCMP_ACT_ERRNO")))
    assert os.strerror(errno.EPERM) in res.stderr and "rc=1" in res.stdout


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL_PROCESS"])
def test_kill_actions_end_the_process_with_sigsys(runtime: Runtime, bundle, action) -> None:
    res = run(runtime, bundle, "cd /tmp; echo survived", profile(rule(["chdir"], action)))
    assert res.returncode == SIGSYS_EXIT, res.stderr
    assert "survived" not in res.stdout


def test_trap_delivers_sigsys_to_a_handler(runtime: Runtime, bundle) -> None:
    # `cd` is a shell builtin: the shell itself makes the chdir, with its SIGSYS trap set
    res = run(runtime, bundle, 'trap "echo caught SIGSYS" SYS; cd /tmp; echo after',
              profile(rule(["chdir"], "SCMP_ACT_TRAP")))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["caught SIGSYS", "after"]


def test_trace_without_a_tracer_is_enosys(runtime: Runtime, bundle) -> None:
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?",
              profile(rule(MKDIR, "SCMP_ACT_TRACE")))
    assert os.strerror(errno.ENOSYS) in res.stderr and "rc=1" in res.stdout


def test_errno_ret_refused_for_actions_without_errno(runtime: Runtime, bundle) -> None:
    b = bundle(["true"], profile(rule(MKDIR, "SCMP_ACT_KILL", errnoRet=1)))
    res = runtime.run("create", "--bundle", b, "sc1")
    assert res.returncode != 0
    assert "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno" in res.stderr
    assert runtime.state_dirs() == []


def _kmsg_lines() -> list[str]:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()


def _stamp(line: str) -> float:
    """The kernel timestamp of a dmesg line ("[  12.345678] ..."), 0 if it has none."""
    head = line[1:line.find("]")] if line.startswith("[") else ""
    try:
        return float(head)
    except ValueError:
        return 0.0


def _audit_records(before: list[str], code: int, syscall: int) -> list[str]:
    # by timestamp, not by line count: a full ring buffer drops old lines as new ones come
    since = max((_stamp(line) for line in before), default=0.0)
    new = [line for line in _kmsg_lines() if _stamp(line) > since]
    return [line for line in new if "type=1326" in line and f"syscall={syscall} " in line
            and f"code={code:#x}" in line]


def test_log_action_allows_and_logs(runtime: Runtime, bundle) -> None:
    before = _kmsg_lines()
    res = run(runtime, bundle, "cd /tmp && pwd", profile(rule(["chdir"], "SCMP_ACT_LOG")))
    assert res.returncode == 0 and res.stdout == "/tmp\n", res.stderr
    assert _audit_records(before, 0x7FFC0000, 80), "no seccomp audit record for chdir"


def test_flag_log_logs_a_denial(runtime: Runtime, bundle) -> None:
    before = _kmsg_lines()
    res = run(runtime, bundle, "cd /tmp; echo rc=$?",
              profile(rule(["chdir"], "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV),
                      flags=["SECCOMP_FILTER_FLAG_LOG"]))
    assert "rc=2" in res.stdout, res.stderr
    assert _audit_records(before, 0x50000, 80), "the LOG flag logged nothing"  # action only


@pytest.mark.parametrize("flags", [["SECCOMP_FILTER_FLAG_TSYNC"],
                                   ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                                   ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                                   ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]])
def test_flags_load(runtime: Runtime, bundle, flags) -> None:
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?",
              profile(rule(MKDIR, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV), flags=flags))
    assert "rc=1" in res.stdout and os.strerror(errno.EXDEV) in res.stderr, res.stderr


# -- arguments: kill(pid, sig) from the shell, which is pid 1 of its pid namespace ------------

SIGNALS = (0, 18, 23, 28)  # null, CONT, URG, WINCH: harmless to send to the container's init
KILL_SCRIPT = ('for s in 0 18 23 28; do echo "$s $(kill -$s 1 2>&1 && echo ok)"; done; '
               'echo "x $(kill -0 99999 2>&1 || echo gone)"')


def _denied(stdout: str) -> set[int]:
    out = set()
    for line in stdout.splitlines():
        sig, _, rest = line.partition(" ")
        if sig.isdigit() and os.strerror(errno.EXDEV) in rest:
            out.add(int(sig))
    return out


def arg(index: int, op: str, value: int, value_two: int = 0) -> dict:
    return {"index": index, "op": op, "value": value, "valueTwo": value_two}


@pytest.mark.parametrize("op,value,value_two,expected", [
    ("SCMP_CMP_NE", 18, 0, {0, 23, 28}),
    ("SCMP_CMP_LT", 18, 0, {0}),
    ("SCMP_CMP_LE", 18, 0, {0, 18}),
    ("SCMP_CMP_EQ", 18, 0, {18}),
    ("SCMP_CMP_GE", 18, 0, {18, 23, 28}),
    ("SCMP_CMP_GT", 18, 0, {23, 28}),
    ("SCMP_CMP_MASKED_EQ", 0x3, 0x2, {18}),  # sig & 3 == 2
])
def test_argument_operators(runtime: Runtime, bundle, op, value, value_two, expected) -> None:
    res = run(runtime, bundle, KILL_SCRIPT,
              profile(rule(["kill"], "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV,
                           args=[arg(1, op, value, value_two)])))
    assert res.returncode == 0, res.stderr
    assert _denied(res.stdout) == expected, res.stdout
    if 0 not in expected:  # kill(99999, 0) was not filtered and reached the kernel
        assert os.strerror(errno.ESRCH) in res.stdout


def test_conditions_on_distinct_args_are_anded(runtime: Runtime, bundle) -> None:
    res = run(runtime, bundle, KILL_SCRIPT + '; echo "y $(kill -18 99999 2>&1)"',
              profile(rule(["kill"], "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV,
                           args=[arg(0, "SCMP_CMP_EQ", 1), arg(1, "SCMP_CMP_GE", 18)])))
    assert _denied(res.stdout) == {18, 23, 28}, res.stdout
    y = [line for line in res.stdout.splitlines() if line.startswith("y ")]
    assert y and os.strerror(errno.EXDEV) not in y[0]  # pid 99999: arg 0 does not match


def test_conditions_on_a_repeated_index_are_ored(runtime: Runtime, bundle) -> None:
    res = run(runtime, bundle, KILL_SCRIPT,
              profile(rule(["kill"], "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV,
                           args=[arg(1, "SCMP_CMP_EQ", 0), arg(1, "SCMP_CMP_EQ", 28)])))
    assert _denied(res.stdout) == {0, 28}, res.stdout


# -- names, architectures ---------------------------------------------------------------------

def test_unknown_syscall_names_are_skipped_with_a_warning(runtime: Runtime, bundle) -> None:
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?",
              profile(rule(["no_such_syscall_pyrt", *MKDIR], "SCMP_ACT_ERRNO")))
    assert res.returncode == 0 and "rc=1" in res.stdout, res.stderr
    warning = [line for line in res.stderr.splitlines() if "no_such_syscall_pyrt" in line]
    assert warning and "warning" in warning[0] and "skipped" in warning[0]
    assert "syscalls[0].names[0]" in warning[0]


def test_architectures(runtime: Runtime, bundle) -> None:
    archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?",
              profile(rule(MKDIR, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV), architectures=archs))
    assert "rc=1" in res.stdout and os.strerror(errno.EXDEV) in res.stderr, res.stderr


def test_unknown_architecture_is_refused(runtime: Runtime, bundle) -> None:
    b = bundle(["true"], profile(architectures=["SCMP_ARCH_VAX"]))
    res = runtime.run("create", "--bundle", b, "sc1")
    assert "linux.seccomp.architectures[0]: unknown architecture 'SCMP_ARCH_VAX'" in res.stderr


# -- the Docker-style default profile -----------------------------------------------------------

ALL_CAPS_NEEDED = ["CAP_SYS_ADMIN", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _with_sys_admin(overrides: dict) -> dict:
    """CAP_SYS_ADMIN: so that what fails below fails because of seccomp, not capabilities."""
    caps = {k: ALL_CAPS_NEEDED for k in ("bounding", "effective", "permitted")}
    return {**overrides, "process": {"capabilities": caps}}


BUSYBOX_WORKLOAD = ("ls / >/dev/null && cat /etc/passwd | wc -l && echo hi | sed s/hi/ho/ && "
                    "(sleep 0.01 & wait) && date +%Y >/dev/null && id -u && echo ok")
BLOCKED = ("unshare -m true; echo unshare=$?; mount -t tmpfs t /mnt; echo mount=$?; "
           "swapoff -a; echo swapoff=$?")


def test_docker_default_profile_runs_busybox(runtime: Runtime, bundle) -> None:
    overrides = {"linux": {"seccomp": docker_default_profile()}}
    res = run(runtime, bundle, BUSYBOX_WORKLOAD, overrides)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "ho", "0", "ok"]


def test_docker_default_profile_blocks_unshare_mount(runtime: Runtime, bundle) -> None:
    script = BLOCKED + "; grep Seccomp: /proc/self/status"
    res = run(runtime, bundle, script, _with_sys_admin({"linux": {"seccomp":
                                                                   docker_default_profile()}}))
    assert "unshare=1" in res.stdout and "mount=255" in res.stdout or "mount=1" in res.stdout
    assert os.strerror(errno.EPERM) in res.stderr or "permission denied" in res.stderr
    # the same container without the profile: CAP_SYS_ADMIN is enough for both
    res2 = run(runtime, bundle, script.replace("sc1", "sc2"), _with_sys_admin({}),
               name="noprofile")
    assert "unshare=0" in res2.stdout and "mount=0" in res2.stdout, res2.stderr


# -- NOTIFY: an agent run by the test gets the listener and answers -----------------------------

NOTIF_RECV = 0xC0502100  # SECCOMP_IOCTL_NOTIF_RECV: _IOWR('!', 0, struct seccomp_notif)
NOTIF_SEND = 0xC0182101  # SECCOMP_IOCTL_NOTIF_SEND: _IOWR('!', 1, struct seccomp_notif_resp)


class Agent:
    """A seccomp agent: accepts one connection on `path`, takes the listener fd and the
    container process state, answers every notification with -`reply_errno`."""

    def __init__(self, path: Path, reply_errno: int) -> None:
        import socket
        import threading

        self.path = path
        self.reply_errno = reply_errno
        self.state: dict | None = None
        self.fds: list[int] = []
        self.notifications: list[tuple[int, int]] = []  # (pid, syscall nr)
        self.error: BaseException | None = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import fcntl
        import select
        import socket
        import struct

        try:
            conn, _ = self.server.accept()
            with conn:
                data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
                while chunk := conn.recv(65536):
                    data += chunk
            self.fds = fds
            self.state = json.loads(data)
            listener = fds[0]
            poller = select.poll()
            poller.register(listener, select.POLLIN)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                events = poller.poll(200)
                if not events:
                    continue
                if events[0][1] & (select.POLLHUP | select.POLLERR):
                    return  # every task of the filter is gone
                buf = bytearray(80)
                fcntl.ioctl(listener, NOTIF_RECV, buf)
                nid, pid, _f, nr = struct.unpack_from("=QIIi", buf)
                self.notifications.append((pid, nr))
                resp = bytearray(struct.pack("=QqiI", nid, 0, -self.reply_errno, 0))
                fcntl.ioctl(listener, NOTIF_SEND, resp)
        except BaseException as e:  # reported by the test
            self.error = e

    def close(self) -> None:
        self.thread.join(timeout=25)
        self.server.close()
        for fd in self.fds:
            os.close(fd)


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                                        "SECCOMP_FILTER_FLAG_TSYNC"]])
def test_notify_reaches_the_listener(runtime: Runtime, bundle, tmp_path: Path, flags) -> None:
    agent = Agent(tmp_path / "agent.sock", errno.EXDEV)
    try:
        overrides = profile(rule(MKDIR, "SCMP_ACT_NOTIFY"), listenerPath=str(agent.path),
                            listenerMetadata="MKNOD=/dev/null;pyrt", flags=flags)
        overrides["annotations"] = {"io.pyrt.test": "notify"}
        b = bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], overrides)
        runtime.create(b, "sc1")
        pid = runtime.state("sc1")["pid"]
        runtime.start("sc1")
        runtime.wait_status("sc1", "stopped")
    finally:
        agent.close()
    assert agent.error is None, agent.error
    assert "rc=1" in runtime.output("sc1")
    assert os.strerror(errno.EXDEV) in runtime.output("sc1", "stderr")  # the agent's answer
    state = agent.state
    assert state is not None and len(agent.fds) == 1
    assert state["fds"] == ["seccompFd"] and state["pid"] == pid
    assert state["metadata"] == "MKNOD=/dev/null;pyrt"
    assert state["state"]["id"] == "sc1" and state["state"]["pid"] == pid
    assert state["state"]["status"] == "creating"
    assert state["state"]["bundle"] == str(b) and state["state"]["annotations"] == {
        "io.pyrt.test": "notify"}
    assert agent.notifications and agent.notifications[0][1] in (83, 258)  # mkdir, mkdirat


def test_notify_needs_a_listener_path(runtime: Runtime, bundle) -> None:
    b = bundle(["true"], profile(rule(MKDIR, "SCMP_ACT_NOTIFY")))
    res = runtime.run("create", "--bundle", b, "sc1")
    assert "linux.seccomp.listenerPath: required when an action is SCMP_ACT_NOTIFY" in res.stderr


def test_notify_listener_unreachable_fails_create(runtime: Runtime, bundle,
                                                  tmp_path: Path) -> None:
    b = bundle(["true"], profile(rule(MKDIR, "SCMP_ACT_NOTIFY"),
                                 listenerPath=str(tmp_path / "nobody.sock")))
    res = runtime.run("create", "--bundle", b, "sc1")
    assert res.returncode != 0
    assert "seccomp: connect to listenerPath" in res.stderr
    assert runtime.state_dirs() == []


# -- the cache: the second container with the same profile skips compilation ------------------

def test_second_container_uses_the_cached_filter(runtime: Runtime, bundle, tmp_path: Path,
                                                 seccomp_cache: Path) -> None:
    overrides = {"linux": {"seccomp": docker_default_profile()}}
    log = tmp_path / "debug.log"
    lines = []
    for name in ("one", "two"):
        b = bundle(["true"], overrides, name=name)
        res = runtime.run("--debug", "--log", str(log), "run", "--bundle", b, name)
        assert res.returncode == 0, res.stderr
        lines.append([line for line in log.read_text().splitlines() if "seccomp: filter" in line])
        log.unlink()
    assert len(lines[0]) == 1 and " compiled (" in lines[0][0], lines
    assert len(lines[1]) == 1 and "loaded from cache" in lines[1][0], lines
    assert "compilation skipped" in lines[1][0]
    assert len(list(seccomp_cache.glob("*.bpf"))) == 1
    assert oct(seccomp_cache.stat().st_mode & 0o777) == "0o700"


def test_a_tampered_cache_entry_is_recompiled(runtime: Runtime, bundle, tmp_path: Path,
                                              seccomp_cache: Path) -> None:
    overrides = profile(rule(MKDIR, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    script = "mkdir /tmp/x; echo rc=$?"
    assert "rc=1" in run(runtime, bundle, script, overrides).stdout
    (entry,) = seccomp_cache.glob("*.bpf")
    data = entry.read_bytes()
    entry.write_bytes(data[:-8] + bytes(8))  # the last instruction: now "return KILL"
    log = tmp_path / "debug.log"
    b = bundle(["sh", "-c", script], overrides, name="again")
    res = runtime.run("--debug", "--log", str(log), "run", "--bundle", b, "sc2")
    assert "rc=1" in res.stdout, res.stderr
    assert " compiled (" in log.read_text()


# -- load order (docs/process-chain.md, init) -----------------------------------------------------

def test_without_no_new_privs_the_filter_loads_before_caps_drop(runtime: Runtime,
                                                                bundle) -> None:
    # uid 1000 without CAP_SYS_ADMIN could not load a filter without no_new_privs: the init
    # must load it while still privileged, before the credentials are applied
    overrides = profile(rule(MKDIR, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    overrides["process"] = {"noNewPrivileges": False, "user": {"uid": 1000, "gid": 1000}}
    res = run(runtime, bundle, "mkdir /tmp/x; echo rc=$?; grep -E '^(Seccomp|NoNewPrivs|CapEff):'"
              " /proc/self/status", overrides)
    assert res.returncode == 0, res.stderr
    assert os.strerror(errno.EXDEV) in res.stderr
    fields = dict(line.split(":\t") for line in res.stdout.splitlines() if ":\t" in line)
    assert fields["Seccomp"].strip() == "2" and fields["NoNewPrivs"].strip() == "0"
    assert fields["CapEff"].strip() == "0000000000000000"


@pytest.mark.parametrize("nnp", [True, False])
def test_filter_comes_after_the_inits_own_credentials(runtime: Runtime, bundle,
                                                      nnp: bool) -> None:
    # a profile denying setgroups, setresuid, chdir and close_range: with or without
    # no_new_privs the init makes those calls before the load, so the container runs
    # (test_parity_seccomp.py: what is left after it)
    overrides = profile(rule(["setgroups", "setresuid", "chdir", "close_range"],
                             "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV))
    overrides["process"] = {"noNewPrivileges": nnp, "user": {"uid": 1000, "gid": 1000}}
    res = runtime.run_bundle(bundle(["id", "-u"], overrides), "sc1", check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "1000\n"


def test_exec_process_gets_the_containers_filter(runtime: Runtime, bundle) -> None:
    b = bundle(["sleep", "30"], profile(rule(MKDIR, "SCMP_ACT_ERRNO", errnoRet=errno.EXDEV)))
    runtime.create(b, "sc1")
    runtime.start("sc1")
    res = runtime.run("exec", "sc1", "sh", "-c",
                      "mkdir /tmp/y; echo rc=$?; grep Seccomp: /proc/self/status")
    assert "rc=1" in res.stdout and os.strerror(errno.EXDEV) in res.stderr, res.stderr
    assert re.search(r"Seccomp:\s+2", res.stdout)
    runtime.delete("sc1", force=True)
