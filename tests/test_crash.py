"""Crash consistency: the runtime killed (SIGKILL) at each named step of each verb.

PYRUNTIME_FAULT=<step> makes the runtime kill itself at that step (crash_point() in
pyruntime/errors.py); served, the worker dies there.  After each kill the invariant is:
`delete --force ID` exits 0, the id can be created again, and no process of the test, no
cgroup, no mount, no state dir and no image bundle is left.  A sweep of SIGKILLs at time
offsets into a cold `create` checks the same without the named steps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.cgroups import find_cgroups, remove_cgroups
from support.leftovers import (
    TOKEN_VAR,
    find_processes,
    wait_for_no_leftovers,
)
from support.runtime import Runtime, client_binary, describe, served_suite
from support.served import SOCKET_ENV, Server

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

FAULT = "PYRUNTIME_FAULT"
CLIENT = client_binary()

CREATE = ["create:reserved", "create:provisional", "create:cgroups", "create:fifo",
          "spawn:pid", "create:ready", "create:saved", "create:handed-over"]
START = ["start:opened", "start:released"]
DELETE = ["delete:killed", "delete:cgroups", "delete:state-removal"]
STEPS = {
    "create": CREATE,
    "start": START,
    "run": [*CREATE, *START, "run:started", "run:exited", *DELETE],
    "exec": ["spawn:pid", "exec:started"],
    "delete": DELETE,
    "run-image": ["run-image:reserved", "run-image:bundle", *CREATE, *START, "run:started",
                  "run:exited", *DELETE, "delete:bundle"],
}
# the init dies with the runtime until the state is saved and handed over (lifeline.c)
DIES_WITH_THE_RUNTIME = {"create:fifo", "spawn:pid", "create:ready", "create:saved"}
AFTER_EXIT = {"run:exited", *DELETE, "delete:bundle"}
CASES = [(verb, step) for verb, steps in STEPS.items() for step in steps]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("crash-server"))
    yield s
    s.stop()


@pytest.fixture(params=["cold", "served"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "cold" and served_suite():
        pytest.skip("cold kills run in `make test`; `make test-served` adds nothing to them")
    return request.param


@pytest.fixture
def rt(runtime: Runtime, mode: str, request: pytest.FixtureRequest,
       monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """The test's runtime, cold or through a server of this module's own."""
    if mode == "served":
        if not CLIENT.is_file() or CLIENT.read_bytes()[:4] != b"\x7fELF":
            pytest.fail(f"{CLIENT} is not the native client: run `make setup`")
        server = request.getfixturevalue("server")
        monkeypatch.setenv(SOCKET_ENV, str(server.socket))
        root = str(runtime.root)
        runtime.cmd = lambda *args: [str(CLIENT), "--root", root, *map(os.fspath, args)]
    elif served_suite():
        monkeypatch.delenv(SOCKET_ENV, raising=False)  # cold means cold here
        root = str(runtime.root)
        runtime.cmd = lambda *args: [sys.executable, "-m", "pyruntime", "--root", root,
                                     *map(os.fspath, args)]
    return runtime


def faulty(step: str) -> dict[str, str]:
    return {**os.environ, FAULT: step}


def killed(result: subprocess.CompletedProcess[str], mode: str) -> None:
    """The verb died at the step: SIGKILL cold; served, the client exits 1 saying so on
    one line (it once exited 1 with an empty stderr)."""
    __tracebackhide__ = True
    if mode == "cold":
        assert result.returncode == -signal.SIGKILL, describe(result)
    else:
        lines = result.stderr.splitlines()
        assert result.returncode == 1, describe(result)
        assert len(lines) == 1 and "the server's worker died" in lines[0], describe(result)


def assert_recoverable(rt: Runtime, cid: str, again: list[str]) -> None:
    """delete --force clears the id; nothing is left; `again` (a verb) reuses the id."""
    __tracebackhide__ = True
    result = rt.run("delete", "--force", cid, timeout=60)
    assert result.returncode == 0, describe(result)
    assert_nothing_left(rt)
    rt.run(*again, check=True, timeout=60)
    rt.run("delete", "--force", cid, check=True, timeout=60)
    assert_nothing_left(rt)


def assert_no_process(rt: Runtime, but: int | None = None) -> None:
    """No process of the test is alive (`but` that one, e.g. a tracer)."""
    __tracebackhide__ = True

    def procs() -> list:
        return [p for p in find_processes(rt.workdir, rt.token) if p.pid != but]

    deadline = time.monotonic() + 10
    while (left := procs()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], left


def assert_nothing_left(rt: Runtime) -> None:
    __tracebackhide__ = True
    left = wait_for_no_leftovers(rt.workdir, rt.token, None, rt.root, grace=10)
    assert not left, left.report()
    assert find_cgroups(rt.token) == []


@pytest.mark.parametrize(("verb", "step"), [c for c in CASES if c[0] != "run-image"],
                         ids=[f"{v}-{s}" for v, s in CASES if v != "run-image"])
def test_killed_at_step(rt: Runtime, bundle, mode: str, verb: str, step: str) -> None:
    cid = "c1"
    b = bundle(["sleep", "1000"])
    create = ["create", "--bundle", str(b), cid]
    if verb == "create":
        result = rt.run(*create, env=faulty(step), timeout=60)
    elif verb == "run":
        # from run:exited on the process must end; before, one that would outlive a leak
        args = ["true"] if step in AFTER_EXIT else ["sleep", "1000"]
        r = bundle(args, name="run")
        result = rt.run("run", "--bundle", str(r), cid, env=faulty(step), timeout=60)
    else:
        rt.run(*create, check=True, timeout=60)
        if verb == "start":
            result = rt.run("start", cid, env=faulty(step), timeout=60)
        elif verb == "exec":
            rt.run("start", cid, check=True)
            result = rt.run("exec", cid, "sleep", "999", env=faulty(step), timeout=60)
        else:  # delete
            rt.run("start", cid, check=True)
            result = rt.run("delete", "--force", cid, env=faulty(step), timeout=60)
    killed(result, mode)
    if step in DIES_WITH_THE_RUNTIME and verb in ("create", "run"):
        assert_no_process(rt)  # the lifeline, before any delete: nobody is left to start it
    assert_recoverable(rt, cid, create)


@pytest.fixture
def image(tmp_path: Path, rt: Runtime) -> str:
    """An image in the test's store whose containers carry the test's token."""
    from support.oci_builder import LayoutBuilder, busybox_layer

    b = LayoutBuilder(tmp_path / "layout")
    img = b.image([busybox_layer()], config={"Cmd": ["/bin/sh"],
                                             "Env": [f"{TOKEN_VAR}={rt.token}"]})
    b.tag(img.descriptor, "tiny")
    rt.run("image", "load", f"oci:{b.path}:tiny", check=True, timeout=120)
    return "tiny"


@pytest.mark.parametrize("step", STEPS["run-image"])
def test_run_image_killed_at_step(rt: Runtime, image: str, mode: str, step: str) -> None:
    cid = f"c-{rt.token}"  # the default cgroup is named after the id: find_cgroups sees it
    args = ["true"] if step in AFTER_EXIT else ["/bin/busybox", "sleep", "1000"]
    result = rt.run("run", "--image", image, "--rm", cid, "--", *args, env=faulty(step),
                    timeout=60)
    killed(result, mode)
    assert_recoverable(rt, cid, ["run", "--image", image, "-d", cid, "--",
                                 "/bin/busybox", "sleep", "99"])
    assert not (rt.root / "images" / "containers" / cid).exists()


def test_create_of_a_leftover_says_exists(rt: Runtime, bundle, mode: str) -> None:
    """As runc: the id of a dead create is taken until `delete --force` clears it; a plain
    delete names the way out."""
    b = bundle(["sleep", "1000"])
    killed(rt.run("create", "--bundle", str(b), "c1", env=faulty("create:fifo")), mode)
    again = rt.run("create", "--bundle", str(b), "c1")
    assert again.returncode == 1 and "exists" in again.stderr, describe(again)
    assert "delete --force c1" in again.stderr, describe(again)
    plain = rt.run("delete", "c1")
    assert plain.returncode == 1 and "delete --force" in plain.stderr, describe(plain)
    assert rt.run("state", "c1").returncode == 1
    assert rt.ids() == []  # list skips it quietly: it is not a container
    assert_recoverable(rt, "c1", ["create", "--bundle", str(b), "c1"])


RESTORE = ["restore:reserved", "restore:provisional", "restore:cgroups"]


@pytest.mark.parametrize("step", RESTORE)
def test_restore_killed_before_criu(runtime: Runtime, bundle, tmp_path: Path,
                                    step: str) -> None:
    """The steps of `restore` before CRIU runs (so on any kernel): killed there, the
    provisional record lets `delete --force` remove the state dir and the cgroups."""
    if served_suite():
        pytest.skip("restore always runs cold: it runs in `make test`")
    image = tmp_path / "checkpoint"
    image.mkdir()
    (image / "descriptors.json").write_text("[]")
    b = bundle(["sleep", "1000"])
    env = {k: v for k, v in faulty(step).items() if k != SOCKET_ENV}
    result = runtime.run("restore", "--image-path", image, "--bundle", b, "c1", env=env,
                         timeout=60)
    assert result.returncode == -signal.SIGKILL, describe(result)
    assert (runtime.root / "c1").is_dir()
    if step == "restore:cgroups":
        assert find_cgroups(runtime.token) != []  # made, and then left by the kill
    assert_recoverable(runtime, "c1", ["create", "--bundle", str(b), "c1"])


# -- a caller killed while stage1 starts -------------------------------------------------

GETPPID = {"x86_64": 110, "aarch64": 173}  # syscall numbers, as /proc/PID/syscall shows them


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _in_syscall(pid: int, nr: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split(" ", 1)[0] == str(nr)
    except OSError:
        return False


@contextmanager
def stage1_held(rt: Runtime, b, mode: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """`create` under strace, which holds stage1 (the caller's child) in getppid() for 2 s:
    yields the tracer and the caller (served: the client, which forks stage1)."""
    nr = GETPPID.get(os.uname().machine)
    if nr is None:
        pytest.skip(f"getppid's syscall number on {os.uname().machine} is not listed here")
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=getppid",
            "-e", "inject=getppid:delay_enter=2000000", "--",
            *rt.cmd("create", "--bundle", str(b), "c1")]
    tracer = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=rt.workdir)
    try:
        caller, stage1 = None, None
        deadline = time.monotonic() + 60
        while stage1 is None and time.monotonic() < deadline:
            caller = next(iter(_children(tracer.pid)), caller)
            if caller is not None:
                stage1 = next((c for c in _children(caller) if _in_syscall(c, nr)), None)
            time.sleep(0.002)
        assert stage1 is not None, "stage1 never reached getppid()"
        if mode == "served":  # the client forked stage1: the call was not run cold
            assert os.path.realpath(f"/proc/{caller}/exe") == os.path.realpath(CLIENT)
        yield tracer, caller
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()


def assert_spares_only(request: pytest.FixtureRequest) -> None:
    """The server is back to its two spare workers: the one that took the call is gone."""
    __tracebackhide__ = True
    server = request.getfixturevalue("server")
    deadline = time.monotonic() + 60
    while len(server.children()) != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.children()) == 2, server.children()


def test_caller_killed_before_stage1_checks_it(rt: Runtime, bundle, mode: str,
                                               request: pytest.FixtureRequest) -> None:
    """The runtime (served: the client) SIGKILLed while stage1 has not yet made sure of its
    caller; getppid() then names the reaper stage1 was reparented to.  Before, the init
    was armed against that reaper and waited for its hand-over for ever (served, the
    worker too, waiting for the dead client's answer on a socket the init had inherited,
    so `delete --force` said "is being created").  Now stage1 knows its caller's pid from
    before the clone and ends there: nothing is alive before any delete."""
    b = bundle(["sleep", "1000"])
    with stage1_held(rt, b, mode) as (tracer, caller):
        os.kill(caller, signal.SIGKILL)
        assert_no_process(rt, but=tracer.pid)  # no init outlives a caller that did not
        # record it
        assert tracer.wait(timeout=60) == -signal.SIGKILL  # strace: its tracee's end
    if mode == "served":
        assert_spares_only(request)
    assert_recoverable(rt, "c1", ["create", "--bundle", str(b), "c1"])


@pytest.mark.parametrize("mode", ["served"])
def test_delete_force_at_once_after_the_client_died(rt: Runtime, bundle, mode: str,
                                                    request: pytest.FixtureRequest) -> None:
    """Served, the client SIGKILLed while its worker creates: the worker dies with its
    client, but only once every copy of the client's socket is closed (a child of the
    client, here stage1 held by strace, keeps one).  `delete --force` at once (as an engine
    does after a failed create) must not say "is being created": the provisional record
    names the client, and a creator whose client is gone is ended and cleared."""
    b = bundle(["sleep", "1000"])
    with stage1_held(rt, b, mode) as (tracer, caller):
        os.kill(caller, signal.SIGKILL)
        while os.path.exists(f"/proc/{caller}/exe"):  # reaped by strace: gone
            time.sleep(0.01)
        result = rt.run("delete", "--force", "c1", timeout=60)
        assert result.returncode == 0, describe(result)
        assert not (rt.root / "c1").exists()
        assert_no_process(rt, but=tracer.pid)
        assert tracer.wait(timeout=60) == -signal.SIGKILL
    assert_spares_only(request)
    assert_nothing_left(rt)
    rt.run("create", "--bundle", str(b), "c1", check=True, timeout=60)
    rt.run("delete", "--force", "c1", check=True, timeout=60)
    assert_nothing_left(rt)


# -- a sweep of SIGKILLs by time ----------------------------------------------------------

SWEEP_KILLS = 60
LAUNCHER = Path(sys.executable).parent / "pyruntime-python"  # the cold path, as shipped


def test_create_killed_at_time_offsets(rt: Runtime, bundle, mode: str) -> None:
    """SIGKILL a `create` (cold: the launcher as shipped; served: the client) at
    SWEEP_KILLS offsets spread over how long one takes here.  After each: no process is
    alive unless the kill came after state.json was saved (the lifeline), `delete --force`
    at once clears the id, nothing is left (killed before the mkdir: nothing to delete)."""
    runtime = rt
    b = bundle(["sleep", "1000"])
    if mode == "cold":
        argv = [str(LAUNCHER), "--root", str(runtime.root), "create", "--bundle", str(b)]
        env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    else:
        argv = runtime.cmd("create", "--bundle", str(b))
        env = dict(os.environ)

    def start(cid: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*argv, cid], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    took = []
    for cid in ("t1", "t2"):
        t0 = time.monotonic()
        assert start(cid).wait(timeout=60) == 0
        took.append(time.monotonic() - t0)
        runtime.run("delete", "--force", cid, check=True)
    span = min(took) * 1.1
    outcomes = {"killed": 0, "finished": 0, "left a partial dir": 0, "left a state.json": 0}
    for i in range(SWEEP_KILLS):
        cid = f"s{i}"
        proc = start(cid)
        time.sleep(span * i / SWEEP_KILLS)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        outcomes["killed" if code == -signal.SIGKILL else "finished"] += 1
        saved = (runtime.root / cid / "state.json").exists()
        if code == -signal.SIGKILL and (runtime.root / cid).exists():
            outcomes["left a state.json" if saved else "left a partial dir"] += 1
        if code == -signal.SIGKILL and not saved:
            assert_no_process(runtime)
        result = runtime.run("delete", "--force", cid, timeout=60)
        assert result.returncode == 0 or "does not exist" in result.stderr, describe(result)
        assert_nothing_left(runtime)
        assert not (runtime.root / cid).exists()
    runtime.create(b, "again")
    runtime.delete("again", force=True)
    assert_nothing_left(runtime)
    print(f"{mode} create sweep: {SWEEP_KILLS} kills over {span * 1000:.0f} ms: {outcomes}")
    assert outcomes["killed"] > 0, outcomes


def test_leftover_spares_a_cgroup_another_container_took(rt: Runtime, bundle,
                                                          mode: str) -> None:
    """A leftover's cgroup, taken over since by a container with the same cgroupsPath, is
    neither killed nor removed by `delete --force` of the leftover."""
    b = bundle(["sleep", "1000"])
    killed(rt.run("create", "--bundle", str(b), "dead", env=faulty("create:ready")), mode)
    assert_no_process(rt)
    rt.create(b, "live")  # same cgroupsPath: the leftover's (now empty) cgroups
    rt.run("delete", "--force", "dead", check=True)
    assert rt.status("live") == "created"
    rt.start("live")
    assert rt.status("live") == "running"
    rt.run("delete", "--force", "live", check=True)
    # "live" found them made and so leaves them, as any container does with a cgroup it
    # did not make; nothing else is left
    remove_cgroups(find_cgroups(rt.token))
    assert_nothing_left(rt)
