"""The pytest plugin's teardown, seen from outside: a pytest run (pytester, in a subprocess
with the plugin loaded from its pytest11 entry point) of tests that leave things behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyruntime.api import Runtime

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

INNER = '''
import os, subprocess

def test_forgets_a_container(pyruntime_runtime, oci_bundle):
    c = pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "forgotten-ctr")
    c.start()
    with open(os.environ["PYRT_INNER_OUT"], "w") as f:
        f.write(f"{pyruntime_runtime.root} {c.state()['pid']}")

def test_cleans_up(pyruntime_runtime, oci_bundle):
    with pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "tidy") as c:
        c.start()

def test_leaves_a_process(pyruntime_runtime, tmp_path):
    subprocess.Popen(["sleep", "600"], cwd=tmp_path)
'''


def _alive(pid: int, cmdline: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:2] == cmdline.split()
    except FileNotFoundError:
        return False


def test_a_forgotten_container_fails_the_test_by_name_and_is_deleted(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "inner.out"
    monkeypatch.setenv("PYRT_INNER_OUT", str(out))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3, errors=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_forgets_a_container*",
        "*container(s) still there after the test (deleted): forgotten-ctr*",
        "*ERROR at teardown of test_leaves_a_process*",
        "*process left: pid * (cwd): sleep 600*",
    ])
    assert "tidy" not in text  # a test that deletes its container passes clean
    root, pid = out.read_text().split()
    assert Runtime(root).list() == []
    assert not os.path.exists(os.path.join(root, "forgotten-ctr"))
    assert not _alive(int(pid), b"sleep 600")
