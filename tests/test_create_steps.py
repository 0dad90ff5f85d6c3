"""create's orchestration without root: the steps of pyruntime/create_steps.py run against an
executor that records each side effect and fails where told.

A failure at any step undoes exactly what the steps before it made, last first; an undo
that fails stops no other; KeyboardInterrupt and SystemExit undo too; the crash points sit
after the side effects they are named after.  (What the side effects do for real, and that
nothing is left on the host, is tests/test_crash.py's and tests/test_lifecycle.py's job.)
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyruntime import create_steps, steps
from pyruntime.create_steps import Creation, Executor
from pyruntime.errors import Failure
from pyruntime.plan.build import Plan
from pyruntime.state import Store

PID, MASTER = 4242, 77
ORDER = ["poststop", "reserve", "provisional", "cgroups", "fifo", "console", "spawn",
         "hand-over"]
# the executor call each step's `do` makes, and those its undo makes
DO = {"reserve": "reserve", "provisional": "save_provisional", "cgroups": "make_cgroups",
      "fifo": "make_fifo", "console": "open_console", "spawn": "spawn",
      "hand-over": "write_pid_file"}
UNDO = {"poststop": ["poststop"], "reserve": ["remove"], "provisional": [],
        "cgroups": ["destroy_cgroups"], "fifo": [], "console": ["close_console"],
        "spawn": ["close", "kill_and_reap"], "hand-over": []}
SUCCESS = [
    "reserve", "crash:create:reserved", "save_provisional", "crash:create:provisional",
    "make_cgroups", "crash:create:cgroups", "make_fifo", "crash:create:fifo",
    "open_console", "spawn",
    "crash:create:ready", "cgroup_started", "receive_master", "move_net_devices",
    "start_time", "save_state", "crash:create:saved",
    "crash:create:handed-over", "write_pid_file", "close_console",
]


class Boom(Exception):
    pass


class FakeExecutor:
    """Records each call by name; `fail` names the call that raises `error`, `undo_fails`
    the (undo) calls that raise Boom after being recorded."""

    def __init__(self, calls: list[str], fail: str | None = None,
                 error: BaseException | None = None, undo_fails: tuple[str, ...] = ()) -> None:
        self.calls = calls
        self.fail, self.error = fail, error or Failure(f"told to fail at {fail}")
        self.undo_fails = undo_fails
        self.failed = False

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail and not self.failed:
            self.failed = True
            raise self.error
        if name in self.undo_fails:
            raise Boom(f"{name} failed")

    def reserve(self, store, container_id):
        self._call("reserve")

    def remove(self, store, container_id):
        self._call("remove")

    def save_provisional(self, store, container_id, record):
        assert record["id"] == container_id and "creator" in record
        self._call("save_provisional")

    def make_cgroups(self, cgroup, plan, warn):
        self._call("make_cgroups")

    def destroy_cgroups(self, cgroup):
        self._call("destroy_cgroups")

    def make_fifo(self, path, owner):
        self._call("make_fifo")

    def open_console(self, terminal, console_socket):
        self._call("open_console")
        return SimpleNamespace(send_fd=-1)

    def close_console(self, tty):
        self._call("close_console")

    def receive_master(self, tty):
        self._call("receive_master")
        return MASTER

    def spawn(self, plan, on_hooks, on_ready):
        self._call("spawn")
        on_ready(PID)
        return PID

    def cgroup_started(self, cgroup, pid):
        self._call("cgroup_started")

    def move_net_devices(self, pid, moves):
        self._call("move_net_devices")

    def start_time(self, pid):
        self._call("start_time")
        return 12345

    def save_state(self, store, state):
        self._call("save_state")

    def close(self, fd):
        assert fd == MASTER
        self._call("close")

    def kill_and_reap(self, pid):
        assert pid == PID
        self._call("kill_and_reap")

    def write_pid_file(self, path, pid):
        self._call("write_pid_file")

    def poststop(self, records, container_id, bundle, annotations, warn):
        self._call("poststop")


class FakeCgroup:
    def planned_record(self) -> dict:
        return {"paths": {}}

    def to_record(self) -> dict:
        return {"paths": {}}


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The executor's calls, with the crash points passed as `crash:NAME` among them."""
    calls: list[str] = []
    monkeypatch.setattr(create_steps, "crash_point", lambda name: calls.append(f"crash:{name}"))
    return calls


def creation(tmp_path: Path, **options: object) -> Creation:
    options.setdefault("hook_records", {"poststop": [{"path": "/bin/true"}]})
    options.setdefault("net_moves", [("eth9", "eth0")])
    options.setdefault("pid_file", str(tmp_path / "pid"))
    spec = SimpleNamespace(annotations={}, oci_version="1.0.2", linux=None)
    return Creation(Store(str(tmp_path / "root")), "c1", str(tmp_path), spec, Plan(),
                    FakeCgroup(), **options)  # type: ignore[arg-type]


def undos(calls: list[str]) -> list[str]:
    return [c for c in calls if not c.startswith("crash:")]


def expected_undos(failed_step: str) -> list[str]:
    """The undo calls of the steps before `failed_step`, last first (poststop only once
    the init was being spawned, as runc)."""
    before = ORDER[:ORDER.index(failed_step)]
    calls = [c for name in reversed(before) for c in UNDO[name]]
    if ORDER.index(failed_step) < ORDER.index("spawn"):
        calls.remove("poststop")
    return calls


def test_the_fake_has_every_call_of_the_executor() -> None:
    """A new side effect goes through the executor, and the fake learns it too."""
    real = {n for n, _ in inspect.getmembers(Executor, inspect.isfunction)
            if not n.startswith("_")}
    fake = {n for n, _ in inspect.getmembers(FakeExecutor, inspect.isfunction)
            if not n.startswith("_")}
    assert real == fake


def test_the_steps_and_their_order(tmp_path: Path, log: list[str]) -> None:
    assert [s.name for s in creation(tmp_path).steps()] == ORDER


def test_success_makes_everything_in_order_and_undoes_nothing(tmp_path: Path,
                                                             log: list[str]) -> None:
    ex = FakeExecutor(log)
    state = creation(tmp_path).run(ex)
    assert log == SUCCESS
    assert state.pid == PID and state.start_time == 12345
    assert state.console_master == MASTER  # handed to the caller, not closed


@pytest.mark.parametrize("step", [s for s in ORDER if s in DO])
def test_a_failed_step_undoes_the_steps_before_it_in_reverse(tmp_path: Path, log: list[str],
                                                            step: str) -> None:
    ex = FakeExecutor(log, fail=DO[step])
    with pytest.raises(Failure, match=f"told to fail at {DO[step]}"):
        creation(tmp_path).run(ex)
    calls = undos(ex.calls)
    done = calls[:calls.index(DO[step]) + 1]
    assert done == undos(SUCCESS[:SUCCESS.index(DO[step]) + 1])
    assert calls[len(done):] == expected_undos(step)


@pytest.mark.parametrize("call", ["cgroup_started", "receive_master", "move_net_devices",
                                  "start_time", "save_state"])
def test_a_failure_at_ready_closes_the_master_it_got_and_undoes_the_rest(
        tmp_path: Path, log: list[str], call: str) -> None:
    """spawn.py kills the init itself when it fails; the step closes the master it got."""
    ex = FakeExecutor(log, fail=call)
    with pytest.raises(Failure):
        creation(tmp_path).run(ex)
    calls = undos(ex.calls)
    after = calls[calls.index(call) + 1:]
    got_master = "receive_master" in calls[:calls.index(call)]
    assert after == (["close"] if got_master else []) + expected_undos("spawn")


def test_an_init_that_exited_during_setup_is_named(tmp_path: Path, log: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ex = FakeExecutor(log)
    monkeypatch.setattr(ex, "start_time", lambda pid: None)
    with pytest.raises(Failure, match="container init exited during setup"):
        creation(tmp_path).run(ex)
    assert undos(ex.calls)[-5:] == ["close", *expected_undos("spawn")]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), Boom("bug")],
                         ids=["KeyboardInterrupt", "SystemExit", "other exception"])
def test_any_exception_undoes(tmp_path: Path, log: list[str], error: BaseException) -> None:
    ex = FakeExecutor(log, fail="write_pid_file", error=error)
    with pytest.raises(type(error)) as raised:
        creation(tmp_path).run(ex)
    assert raised.value is error
    calls = undos(ex.calls)
    assert calls[calls.index("write_pid_file") + 1:] == expected_undos("hand-over")


def test_a_failed_undo_stops_no_other_and_the_first_error_propagates(
        tmp_path: Path, log: list[str]) -> None:
    warned: list[str] = []
    ex = FakeExecutor(log, fail="write_pid_file", undo_fails=("close_console", "poststop"))
    with pytest.raises(Failure, match="told to fail at write_pid_file"):
        creation(tmp_path, warn=warned.append).run(ex)
    calls = undos(ex.calls)
    assert calls[calls.index("write_pid_file") + 1:] == expected_undos("hand-over")
    assert warned == ["create c1: undoing console: close_console failed",
                      "create c1: undoing poststop: poststop failed"]


@pytest.mark.parametrize(("fail", "undo"), [("make_fifo", "destroy_cgroups"),
                                            ("write_pid_file", "destroy_cgroups"),
                                            ("write_pid_file", "kill_and_reap")])
def test_what_cannot_be_undone_keeps_its_record(tmp_path: Path, log: list[str], fail: str,
                                                undo: str) -> None:
    """Cgroups that stay (busy) or an init that could not be killed are named by the
    provisional record and state.json: the state dir stays for `delete --force`
    (pyruntime/leftover.py) instead of forgetting them; the other undos run."""
    warned: list[str] = []
    ex = FakeExecutor(log, fail=fail, undo_fails=(undo,))
    with pytest.raises(Failure, match=f"told to fail at {fail}"):
        creation(tmp_path, warn=warned.append).run(ex)
    calls = undos(ex.calls)
    step = next(s for s, call in DO.items() if call == fail)
    assert calls[calls.index(fail) + 1:] == [c for c in expected_undos(step) if c != "remove"]
    assert len(warned) == 1 and warned[0].endswith(f"{undo} failed")


def test_reserved_makes_no_dir_but_removes_it(tmp_path: Path, log: list[str]) -> None:
    """run --image reserved the dir (and wrote its record); a failed create removes it."""
    ex = FakeExecutor(log, fail="make_fifo")
    with pytest.raises(Failure):
        creation(tmp_path, reserved=True).run(ex)
    assert undos(ex.calls) == ["save_provisional", "make_cgroups", "make_fifo",
                               "destroy_cgroups", "remove"]


def test_without_poststop_hooks_none_run(tmp_path: Path, log: list[str]) -> None:
    ex = FakeExecutor(log, fail="write_pid_file")
    with pytest.raises(Failure):
        creation(tmp_path, hook_records={}).run(ex)
    assert "poststop" not in ex.calls


# -- the runner itself ----------------------------------------------------------------

def _recording(n: int, fail_at: int | None, log: list[str],
               error: BaseException | None = None) -> list[steps.Step]:
    def do(i: int):
        def f() -> None:
            log.append(f"do{i}")
            if i == fail_at:
                raise error or Boom(f"step {i}")
        return f

    def undo(i: int):
        return lambda: log.append(f"undo{i}")

    return [steps.Step(f"s{i}", do(i), undo(i) if i % 3 else None) for i in range(n)]


@pytest.mark.parametrize("fail_at", range(6))
def test_run_undoes_exactly_the_steps_before_the_failed_one(fail_at: int) -> None:
    log: list[str] = []
    with pytest.raises(Boom, match=f"step {fail_at}"):
        steps.run(_recording(6, fail_at, log))
    assert log == [f"do{i}" for i in range(fail_at + 1)] + [
        f"undo{i}" for i in reversed(range(fail_at)) if i % 3]


def test_run_without_a_failure_undoes_nothing() -> None:
    log: list[str] = []
    steps.run(_recording(4, None, log))
    assert log == ["do0", "do1", "do2", "do3"]


def test_a_failed_undo_is_reported_or_noted() -> None:
    def bad() -> None:
        raise OSError("busy")

    log: list[str] = []

    def fail() -> None:
        raise Boom("first")

    plan = [steps.Step("a", lambda: None, lambda: log.append("undo a")),
            steps.Step("b", lambda: None, bad), steps.Step("c", fail)]
    reported: list[tuple[str, str]] = []
    with pytest.raises(Boom, match="first"):
        steps.run(plan, lambda name, e: reported.append((name, str(e))))
    assert reported == [("b", "busy")] and log == ["undo a"]
    with pytest.raises(Boom, match="first") as raised:
        steps.run(plan)
    assert raised.value.__notes__ == ["undo of b failed too: busy"]
    assert log == ["undo a", "undo a"]
