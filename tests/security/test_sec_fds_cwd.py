"""CVE-2024-21626: a host fd leaked into the container, reached as the working directory
through /proc/self/fd/N, gives the container the host's filesystem.

The attack: process.cwd = /proc/self/fd/N for every N an fd of the runtime could have
(3..10): if one named a host directory that stayed open, the container would start in it.
And a scan of the fds the container process holds: only 0, 1, 2 and the preserved ones.

Defence: every fd of the runtime is O_CLOEXEC, close_range(CLOEXEC) before execve except
preserved fds (native/exec.c), and the cwd is checked to be reachable from the container's
root (getcwd fails for a directory outside it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root


@pytest.mark.parametrize("n", range(3, 11))
def test_cwd_through_a_leaked_fd_fails(runtime: Runtime, bundle, n: int) -> None:
    b = bundle(["sh", "-c", "pwd; ls -a"], {"process": {"cwd": f"/proc/self/fd/{n}"}})
    res = runtime.run_bundle(b, "c1", check=False)
    if res.returncode != 0:  # no such fd at that point, or one outside the root: refused
        assert "chdir" in res.stderr, res.stderr
        assert res.stdout == ""
        return
    # an fd of the init's own that names a directory of the container (its root): harmless,
    # as long as what the process sees is the container, never the host
    cwd, *entries = res.stdout.splitlines()
    assert (Path(b.rootfs) / cwd.lstrip("/")).is_dir(), res.stdout
    assert "work" not in entries and "bin" in entries, res.stdout


def _fds(out: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r"^(\d+) -> (.*)$", out, re.M)}


def test_container_holds_only_stdio(runtime: Runtime, bundle, with_probe) -> None:
    b = with_probe(bundle(["probe", "fds"]))
    res = runtime.run_bundle(b, "c1")
    fds = _fds(res.stdout)
    assert sorted(fds) == [0, 1, 2], res.stdout


def test_container_holds_stdio_and_preserved_fds(runtime: Runtime, bundle, with_probe,
                                                 tmp_path) -> None:
    b = with_probe(bundle(["probe", "fds"]))
    out = tmp_path / "out"
    script = (f"exec 3</dev/null 4<{b} 5</etc/hostname; "
              f"exec {' '.join(runtime.cmd('run', '--preserve-fds', '2', '--bundle', b, 'c1'))}"
              f" >{out}")
    import subprocess

    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    fds = _fds(out.read_text())
    assert sorted(fds) == [0, 1, 2, 3, 4], out.read_text()  # not 5: not preserved
    assert fds[3] == "/dev/null"
