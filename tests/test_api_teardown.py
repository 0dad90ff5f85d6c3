"""The pytest plugin's teardown, seen from outside: a pytest run (pytester, in a subprocess
with the plugin loaded from its pytest11 entry point) of tests that leave things behind."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

from pyruntime.api import Runtime

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

INNER = '''
import os, subprocess

def record(name, text):
    with open(os.path.join(os.environ["PYRT_INNER_OUT"], name), "w") as f:
        f.write(text)

def test_forgets_a_container(pyruntime_runtime, oci_bundle):
    c = pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "forgotten-ctr")
    c.start()
    record("container", f"{pyruntime_runtime.root} {c.state()['pid']}")

def test_cleans_up(pyruntime_runtime, oci_bundle):
    with pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "tidy") as c:
        c.start()

def test_leaves_a_process(pyruntime_runtime, tmp_path):
    subprocess.Popen(["sleep", "600"], cwd=tmp_path)

def test_leaves_a_mount(pyruntime_runtime, tmp_path):
    (tmp_path / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "leftover-tmpfs", tmp_path / "mnt"], check=True)
    record("mount", str(tmp_path / "mnt"))

def test_leaves_a_cgroup(pyruntime_runtime, pyruntime_token):
    # a cgroup named with the test's token, below this process's own (pids, else cgroup2)
    with open("/proc/self/cgroup") as f:
        own = dict(line.split(":", 2)[1:] for line in f.read().splitlines())
    base = ("/sys/fs/cgroup/pids" + own["pids"]) if "pids" in own else \\
        ("/sys/fs/cgroup" + own[""])
    path = os.path.join(base, f"pyrt-test-{pyruntime_token}-by-hand")
    os.mkdir(path)
    record("cgroup", path)
'''


def _alive(pid: int, cmdline: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:2] == cmdline.split()
    except FileNotFoundError:
        return False


def test_the_plugin_is_the_distributions_pytest11_entry_point() -> None:
    entry, = importlib.metadata.entry_points(group="pytest11", name="pyruntime")
    assert entry.value == "pyruntime.api.pytest_plugin"
    assert entry.dist is not None and entry.dist.name == "pyruntime"


def test_teardown_fails_the_test_by_name_and_cleans_up(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "inner"
    out.mkdir()
    monkeypatch.setenv("PYRT_INNER_OUT", str(out))
    pytester.makepyfile(test_inner=INNER)
    assert not pytester.path.is_relative_to(Path(__file__).resolve().parents[1])
    # plain `python -m pytest` in a directory of its own: no conftest, no -p
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.stdout.fnmatch_lines(["plugins:*pyruntime-*"])  # found through the entry point
    result.assert_outcomes(passed=5, errors=4)
    text = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_forgets_a_container*",
        "*container(s) still there after the test (deleted): forgotten-ctr*",
        "*ERROR at teardown of test_leaves_a_process*",
        "*process left: pid * (cwd): sleep 600*",
        "*ERROR at teardown of test_leaves_a_mount*",
        "*mount left: * leftover-tmpfs *",
        "*ERROR at teardown of test_leaves_a_cgroup*",
        "*cgroups left behind after the test:*",
        "*pyrt-test-*-by-hand",
    ])
    assert "tidy" not in text  # a test that deletes its container passes clean
    root, pid = (out / "container").read_text().split()
    assert Runtime(root).list() == []
    assert not os.path.exists(os.path.join(root, "forgotten-ctr"))
    assert not _alive(int(pid), b"sleep 600")
    mountpoint = (out / "mount").read_text()
    with open("/proc/self/mountinfo") as f:
        assert f" {mountpoint} " not in f.read()
    assert not os.path.exists((out / "cgroup").read_text())


INTERRUPTED = '''
import os, signal, time
from pyruntime.api import Container

def test_interrupted(pyruntime_runtime, oci_bundle, pyruntime_token):
    c = pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "interrupted")
    c.start()
    with open(os.environ["PYRT_INNER_OUT"], "w") as f:
        f.write(f"{pyruntime_runtime.root} {c.state()['pid']} {pyruntime_token}")
    if os.environ["PYRT_TERM_AT"] == "test":
        os.kill(os.getpid(), signal.SIGTERM)  # as a CI job's timeout does
        time.sleep(60)
    else:  # the signal lands while the plugin's clean-up is deleting the container
        delete = Container.delete
        def term_then_delete(self, force=False):
            os.kill(os.getpid(), signal.SIGTERM)
            return delete(self, force=force)
        Container.delete = term_then_delete
'''


@pytest.mark.parametrize("term_at", ["test", "teardown"])
def test_sigterm_still_deletes_the_container(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, term_at: str
) -> None:
    """SIGTERM to the pytest process, in a test or in the clean-up after it: the container,
    its cgroups and its process are gone when pytest exits (pytest's default, death by
    SIGTERM, and a KeyboardInterrupt inside the clean-up both left them behind)."""
    from pyruntime.api.leftovers import find_cgroups

    out = tmp_path / "inner"
    monkeypatch.setenv("PYRT_INNER_OUT", str(out))
    monkeypatch.setenv("PYRT_TERM_AT", term_at)
    pytester.makepyfile(test_inner=INTERRUPTED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    # interrupted (pytest 9's tmp_path teardown may add a KeyError after an interrupt: 1)
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED), \
        result.stdout.str()
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*SIGTERM*"])
    root, pid, token = out.read_text().split()
    assert not os.path.exists(os.path.join(root, "interrupted"))
    assert not _alive(int(pid), b"sleep 600")
    assert find_cgroups(token) == []
