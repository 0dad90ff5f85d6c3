"""runtime-spec hooks (config.md#posix-platform-hooks), as runc runs them.

| hook            | when                                  | namespaces      | run by           |
|-----------------|---------------------------------------|-----------------|------------------|
| prestart        | create: init paused before pivot_root | the runtime's   | `create`, here   |
| createRuntime   | same, after prestart                  | the runtime's   | `create`, here   |
| createContainer | same, after createRuntime             | the container's | `create`, native |
| startContainer  | start: after the fifo, before execve   | the container's | the init (C)     |
| poststart       | `start`, once the user's program runs | the runtime's   | `start`          |
| poststop        | `delete` (and `run` at the end)       | the runtime's   | `delete`         |

Each hook gets the state JSON on stdin; args are exactly the config's (argv[0] is
args[0], or the path when args is empty); `timeout` seconds kills it.  Its environment is
exactly its `env` when the hook has one; without, what runc gives: the runtime's own
environment, except for the hooks runc's init runs, which get the container process's
(createContainer: process.env; startContainer: that with HOME, as the process gets it).
A failing create- or start-time hook fails the verb; poststart and poststop failures
are only logged.  The hooks are recorded in state.json at create, so start and delete
can run theirs.
"""

from __future__ import annotations

import os

from pyruntime import SPEC_VERSION, jsonio
from pyruntime.errors import Failure, errno_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.spec.model import Hook, Hooks

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
_ATTRS = {"prestart": "prestart", "createRuntime": "create_runtime",
          "createContainer": "create_container", "startContainer": "start_container",
          "poststart": "poststart", "poststop": "poststop"}
_OUTPUT_MAX = 200
NS_FILES = (("user", 0x10000000), ("mnt", 0x00020000), ("net", 0x40000000),
            ("ipc", 0x08000000), ("uts", 0x04000000), ("cgroup", 0x02000000),
            ("pid", 0x20000000), ("time", 0x00000080))


def _argv(hook: dict) -> list[str]:
    return list(hook.get("args") or []) or [hook["path"]]


def to_record(hooks: Hooks | None) -> dict[str, list[dict]]:
    """The config's hooks as plain JSON for state.json (only kinds that have hooks)."""
    out: dict[str, list[dict]] = {}
    for kind in KINDS:
        items = getattr(hooks, _ATTRS[kind]) if hooks is not None else []
        if items:
            out[kind] = [_hook_record(h) for h in items]
    return out


def _hook_record(h: Hook) -> dict:
    rec: dict = {"path": h.path, "args": list(h.args)}
    if h.env is not None:
        rec["env"] = list(h.env)
    if h.timeout is not None:
        rec["timeout"] = h.timeout
    return rec


def plan_hooks(hooks: Hooks, process_env: list[str]
               ) -> tuple[bool, list[tuple[str, list[str], list[str], int]]]:
    """(whether the init pauses for create-time hooks, startContainer hooks for the init).
    process_env: the container process's environment, for startContainer hooks without env."""
    rec = to_record(hooks)
    pause = any(rec.get(k) for k in ("prestart", "createRuntime", "createContainer",
                                     "startContainer"))
    start = [(h["path"], _argv(h), list(h.get("env", process_env)), h.get("timeout") or 0)
             for h in rec.get("startContainer", [])]
    return pause, start


def state_for_hooks(container_id: str, status: str, pid: int, bundle: str,
                    annotations: dict[str, str] | None) -> dict:
    """The runtime-spec state, as hooks get it (runc omits a zero pid, empty annotations)."""
    state: dict = {"ociVersion": SPEC_VERSION, "id": container_id, "status": status}
    if pid:
        state["pid"] = pid
    state["bundle"] = bundle
    if annotations:
        state["annotations"] = annotations
    return state


def run(records: dict[str, list[dict]], kind: str, state: dict, *,
        ns_of: int | None = None, ns_env: list[str] | None = None) -> None:
    """Run every hook of `kind` in order; Failure on the first that fails.

    ns_of: run them in the namespaces of that pid (createContainer), not the runtime's;
    ns_env: then the environment of those without env (the container process's).
    """
    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(records.get(kind, [])):
        where = f"{kind} hook {i} ({hook['path']})"
        if ns_of is None:
            _run_here(hook, data, where)
        else:
            _run_in_ns(hook, data, where, ns_of, ns_env or [])


def run_logged(records: dict[str, list[dict]], kind: str, state: dict,
               warn: Callable[[str], None] | None) -> None:
    """poststart / poststop: every hook runs; failures are only logged."""
    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(records.get(kind, [])):
        try:
            _run_here(hook, data, f"{kind} hook {i} ({hook['path']})")
        except Failure as e:
            if warn is not None:
                warn(str(e))


def _env(hook: dict) -> dict:
    """The hook's env; without one, the runtime's own."""
    if hook.get("env") is None:
        return _runtime_environ()
    env = {}
    for item in hook["env"]:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _runtime_environ() -> dict[bytes, bytes]:
    """The environment the runtime (the client, when served) was started with: Python's
    own os.environ has what its start-up added (LC_CTYPE from C-locale coercion)."""
    from pyruntime import caller

    try:
        with open(f"{caller.proc()}/environ", "rb") as f:
            block = f.read()
    except OSError:
        return dict(os.environb)
    env = {}
    for item in block.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key:
            env.setdefault(key, value)
    return env


def _describe(where: str, status: int, out: bytes) -> Failure:
    text = " ".join(out.decode(errors="replace").split())[:_OUTPUT_MAX]
    if os.WIFSIGNALED(status):
        what = f"killed by signal {os.WTERMSIG(status)}"
    else:
        what = f"exit status {os.WEXITSTATUS(status)}"
    return Failure(f"{where}: {what}" + (f": {text}" if text else ""))


def _run_here(hook: dict, data: bytes, where: str) -> None:
    import subprocess

    try:
        proc = subprocess.Popen(_argv(hook), executable=hook["path"], env=_env(hook),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, close_fds=True)
    except OSError as e:
        raise Failure(f"{where}: {errno_text(e.errno)}") from None
    try:
        out, _ = proc.communicate(data, timeout=hook.get("timeout"))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise Failure(f"{where}: ran past its timeout of {hook['timeout']}s") from None
    if proc.returncode != 0:
        status = (-proc.returncode if proc.returncode < 0 else proc.returncode << 8)
        raise _describe(where, status, out)


def _ns_flags(pid: int) -> int:
    """The namespaces of `pid` that differ from ours."""
    flags = 0
    for name, flag in NS_FILES:
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


def _run_in_ns(hook: dict, data: bytes, where: str, pid: int, default_env: list[str]) -> None:
    """createContainer: the native code joins the namespaces and execs the hook as our child;
    here we feed its stdin, collect its output and enforce the timeout."""
    from pyruntime._native import ffi, lib

    keep = []

    def strv(values: list[str]):
        bufs = [ffi.new("char[]", v.encode()) for v in values]
        keep.extend(bufs)
        arr = ffi.new("const char *[]", [*bufs, ffi.NULL])
        keep.append(arr)
        return arr

    h = ffi.new("struct pyrt_hook *")
    path = ffi.new("char[]", hook["path"].encode())
    h.path, h.argv = path, strv(_argv(hook))
    env = hook.get("env")
    h.envp = strv(list(default_env if env is None else env))
    h.timeout = hook.get("timeout") or 0
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        child = lib.pyrt_hook_spawn(pid, _ns_flags(pid), h, in_r, out_w, out_w)
    finally:
        os.close(in_r)
        os.close(out_w)
    if child < 0:
        os.close(in_w)
        os.close(out_r)
        raise Failure(f"{where}: {errno_text(-child)}")
    status, out = _supervise(child, in_w, out_r, data, hook.get("timeout"), where)
    if status != 0:
        raise _describe(where, status, out)


def _supervise(pid: int, in_w: int, out_r: int, data: bytes, timeout: int | None,
               where: str) -> tuple[int, bytes]:
    """Write `data` to the child's stdin, read its output, wait for it; kill at timeout."""
    import select
    import time

    deadline = time.monotonic() + timeout if timeout else None
    pidfd = os.pidfd_open(pid)
    os.set_blocking(in_w, False)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_r, select.POLLIN)
    if data:
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
        in_w = -1
    out = b""
    try:
        while True:
            wait = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    raise Failure(f"{where}: ran past its timeout of {timeout}s")
            events = dict(poller.poll(None if wait is None else int(wait * 1000) + 1))
            if out_r in events:
                chunk = os.read(out_r, 4096)
                if chunk:
                    out = (out + chunk)[: _OUTPUT_MAX * 4]
                else:
                    poller.unregister(out_r)
            if in_w >= 0 and in_w in events:
                try:
                    data = data[os.write(in_w, data):]
                except OSError:  # the hook does not read its stdin
                    data = b""
                if not data:
                    poller.unregister(in_w)
                    os.close(in_w)
                    in_w = -1
            if pidfd in events:
                break
        _, status = os.waitpid(pid, 0)
        return status, out
    finally:
        os.close(pidfd)
        os.close(out_r)
        if in_w >= 0:
            os.close(in_w)


def create_time_runner(records: dict[str, list[dict]], container_id: str, bundle: str,
                       annotations: dict[str, str], process_env: list[str]
                       ) -> Callable[[int], bytes]:
    """spawn()'s on_hooks: prestart, createRuntime, createContainer while the init waits
    before pivot_root; returns the state JSON the init gives startContainer hooks.
    process_env: config.json's process.env (createContainer hooks without env get it)."""

    def on_hooks(pid: int) -> bytes:
        creating = state_for_hooks(container_id, "creating", pid, bundle, annotations)
        run(records, "prestart", creating)
        run(records, "createRuntime", creating)
        run(records, "createContainer", creating, ns_of=pid, ns_env=process_env)
        created = state_for_hooks(container_id, "created", pid, bundle, annotations)
        return jsonio.dumps(created).encode()

    return on_hooks
