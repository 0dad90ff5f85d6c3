"""One hook process, run the one way every kind of hook runs: native/hooks.c's
pyrt_hook_run (fork, optionally into another process's namespaces, chdir, stdin = the
state JSON, stdout+stderr kept for the error line, killed at its timeout).

This is the caller's side of it (prestart, createRuntime, createContainer, poststart,
poststop); the container's init calls the same C function for startContainer hooks,
which must run with the init's own credentials, cgroup, seccomp filter and cwd: no
process outside the container has those.  Which hook runs when, where and with what is
pyruntime/hooks.py's business.
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure, errno_text


def argv(hook: dict) -> list[str]:
    """args exactly as configured; the path alone when there are none."""
    return list(hook.get("args") or []) or [hook["path"]]


def run_hook(hook: dict, state: bytes, where: str, *, cwd: str | None = None,
             ns_pid: int = 0, default_env: list[str] | None = None) -> None:
    """Run one hook (a state.json record) to its end; Failure naming `where` unless it
    exits 0.  cwd: its working directory as this process sees it (None: ours); ns_pid:
    run it in that process's namespaces (those that differ from ours); default_env: the
    environment of a hook without `env` (None: the runtime's own)."""
    from pyruntime._native import ffi, lib

    keep = []

    def c_str(value: str | bytes):
        buf = ffi.new("char[]", value.encode() if isinstance(value, str) else value)
        keep.append(buf)
        return buf

    def strv(values: list) -> object:
        arr = ffi.new("const char *[]", [*map(c_str, values), ffi.NULL])
        keep.append(arr)
        return arr

    env = hook.get("env")
    if env is None:
        env = default_env if default_env is not None else _runtime_environ()
    else:  # a name given twice: the last value, as runc's exec.Cmd passes it
        env = list({item.partition("=")[0]: item for item in env}.values())
    h = ffi.new("struct pyrt_hook *")
    h.path, h.argv, h.envp = c_str(hook["path"]), strv(argv(hook)), strv(list(env))
    h.timeout = hook.get("timeout") or 0
    result = ffi.new("struct pyrt_hook_result *")
    rc = lib.pyrt_hook_run(h, c_str(cwd) if cwd else ffi.NULL, ns_pid,
                           _ns_flags(ns_pid) if ns_pid else 0, state, len(state), result)
    if rc < 0:
        step = ffi.string(result.step).decode()
        raise Failure(f"{where}: " + ("" if step == "exec" else f"{step}: ")
                      + errno_text(result.error))
    if result.timed_out:
        raise Failure(f"{where}: ran past its timeout of {hook['timeout']}s")
    status = result.status
    if status != 0:
        if os.WIFSIGNALED(status):
            what = f"killed by signal {os.WTERMSIG(status)}"
        else:
            what = f"exit status {os.WEXITSTATUS(status)}"
        text = ffi.string(result.output).decode(errors="replace")
        raise Failure(f"{where}: {what}" + (f": {text}" if text else ""))


def _ns_flags(pid: int) -> int:
    """The namespaces of `pid` that differ from ours."""
    from pyruntime.plan.linux_consts import NAMESPACES

    flags = 0
    for _, name, flag in NAMESPACES:
        try:
            theirs = os.readlink(f"/proc/{pid}/ns/{name}")
        except OSError:
            continue
        try:
            ours = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            ours = ""
        if theirs != ours:
            flags |= flag
    return flags


def _runtime_environ() -> list[bytes]:
    """The environment the runtime (the client, when served) was started with: Python's
    own os.environ has what its start-up added (LC_CTYPE from C-locale coercion)."""
    from pyruntime import caller

    try:
        with open(f"{caller.proc()}/environ", "rb") as f:
            block = f.read()
    except OSError:
        return [k + b"=" + v for k, v in os.environb.items()]
    env, seen = [], set()
    for item in block.split(b"\0"):
        key, eq, _ = item.partition(b"=")
        if eq and key and key not in seen:  # the first of a repeated name, as before
            seen.add(key)
            env.append(item)
    return env
