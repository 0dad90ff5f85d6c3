"""runtime-spec hooks (config.md#posix-platform-hooks), as runc runs them: which run
when, where and with what (this module: the records in state.json, the plan's part, the
order and the failure policy).  Every hook process is run the same one way,
pyruntime/hookrun.py over native/hooks.c's pyrt_hook_run.

| hook            | when                                  | namespaces      | cwd         |
|-----------------|---------------------------------------|-----------------|-------------|
| prestart        | create: init paused before pivot_root | the runtime's   | bundle      |
| createRuntime   | same, after prestart                  | the runtime's   | bundle      |
| createContainer | same, after createRuntime             | the container's | rootfs      |
| startContainer  | start: after the fifo, before execve  | the container's | process.cwd |
| poststart       | `start`, once the user's program runs | the runtime's   | bundle      |
| poststop        | `delete` (and `run` at the end)       | the runtime's   | see below   |

The runtime runs them all but startContainer, which the container's init runs: it must
have the init's credentials, cgroup, seccomp filter and cwd, which no process outside
the container has (the runner is the same C function there).

The working directories are runc's: it chdirs into the bundle at start-up in the verbs
that take --bundle (create, run, restore), and runs prestart, createRuntime and poststart
from there (poststart in `create`, where pyruntime's `start` runs them); its init starts
in the rootfs, where createContainer hooks run before pivot_root; startContainer hooks
run from the init after it has moved into process.cwd.  So poststop runs in the bundle
when `run` (or a failed `create`, or `restore`) runs it, and in the caller's directory
under `delete`.

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

from pyruntime import SPEC_VERSION, jsonio
from pyruntime.errors import Failure
from pyruntime.hookrun import argv, run_hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.spec.model import Hook, Hooks

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
_ATTRS = {"prestart": "prestart", "createRuntime": "create_runtime",
          "createContainer": "create_container", "startContainer": "start_container",
          "poststart": "poststart", "poststop": "poststop"}


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
    start = [(h["path"], argv(h), list(h.get("env", process_env)), h.get("timeout") or 0)
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


def run(records: dict[str, list[dict]], kind: str, state: dict, *, cwd: str | None,
        ns_of: int = 0, ns_env: list[str] | None = None) -> None:
    """Run every hook of `kind` in order; Failure on the first that fails.

    cwd: their working directory (None: the caller's); ns_of: run them in the namespaces
    of that pid (createContainer), not the runtime's; ns_env: then the environment of
    those without env (the container process's).
    """
    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(records.get(kind, [])):
        run_hook(hook, data, f"{kind} hook {i} ({hook['path']})", cwd=cwd, ns_pid=ns_of,
                 default_env=ns_env)


def run_logged(records: dict[str, list[dict]], kind: str, state: dict,
               warn: Callable[[str], None] | None, *, cwd: str | None) -> None:
    """poststart / poststop: every hook runs; failures are only logged."""
    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(records.get(kind, [])):
        try:
            run_hook(hook, data, f"{kind} hook {i} ({hook['path']})", cwd=cwd)
        except Failure as e:
            if warn is not None:
                warn(str(e))


def create_time_runner(records: dict[str, list[dict]], container_id: str, bundle: str,
                       rootfs: str, annotations: dict[str, str], process_env: list[str]
                       ) -> Callable[[int], bytes]:
    """spawn()'s on_hooks: prestart, createRuntime, createContainer while the init waits
    before pivot_root; returns the state JSON the init gives startContainer hooks.
    rootfs: the absolute host path (createContainer hooks run there, in the container's
    mount namespace); process_env: config.json's process.env (createContainer hooks
    without env get it)."""

    def on_hooks(pid: int) -> bytes:
        creating = state_for_hooks(container_id, "creating", pid, bundle, annotations)
        run(records, "prestart", creating, cwd=bundle)
        run(records, "createRuntime", creating, cwd=bundle)
        run(records, "createContainer", creating, cwd=f"/proc/{pid}/root{rootfs}",
            ns_of=pid, ns_env=process_env)
        created = state_for_hooks(container_id, "created", pid, bundle, annotations)
        return jsonio.dumps(created).encode()

    return on_hooks
