"""--preserve-fds N and socket activation (LISTEN_FDS), as runc does them: fds 3..3+N-1
stay open; LISTEN_FDS/LISTEN_PID=1 only when the runtime itself was socket-activated."""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest

from support import Runtime

pytestmark = pytest.mark.root

SCRIPT = ("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; "
          "echo LISTEN_FDS=${LISTEN_FDS-unset} LISTEN_PID=${LISTEN_PID-unset}; "
          "cat <&3; cat <&4")


def pipe_with(data: bytes) -> int:
    """A pipe's read end holding `data`, at fd 10 or above (so dup2 onto 3, 4 cannot
    clobber the other one)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    high = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(r)
    return high


def run_with_fds(runtime: Runtime, argv: list[str], env: dict[str, str] | None = None,
                 activated: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the runtime with two pipes as its fds 3 and 4 (each holding a line)."""
    fds = [pipe_with(b"three\n"), pipe_with(b"four\n")]
    cmd = runtime.cmd(*argv)
    if activated:  # LISTEN_PID must be the runtime's own pid: exec keeps the shell's
        cmd = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", *cmd]
    def setup() -> None:  # in the child: the pipes become fds 3 and 4
        os.dup2(fds[0], 3)
        os.dup2(fds[1], 4)
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, cwd=runtime.workdir, preexec_fn=setup, close_fds=False,
                              env={**os.environ, **(env or {})})
    finally:
        for fd in fds:
            os.close(fd)


def test_preserve_fds(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", SCRIPT])
    result = run_with_fds(runtime, ["run", "--preserve-fds", "2", "--bundle", str(b), "c1"])
    assert result.returncode == 0, result
    fds, env, three, four = result.stdout.splitlines()
    assert fds.split()[:5] == ["0", "1", "2", "3", "4"], result.stdout
    assert env == "LISTEN_FDS=unset LISTEN_PID=unset"  # runc: --preserve-fds alone sets none
    assert (three, four) == ("three", "four")


def test_fds_not_preserved_are_closed(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    result = run_with_fds(runtime, ["run", "--preserve-fds", "1", "--bundle", str(b), "c1"])
    assert result.returncode == 0, result
    assert result.stdout.split() == ["0", "1", "2", "3", "4"]  # 4: ls's own directory fd
    # (fd 4 of the runtime, not preserved, would have been 4 as well: check it is ls's)
    b2 = bundle(["sh", "-c", "cat <&4"], name="b2")
    result = run_with_fds(runtime, ["run", "--preserve-fds", "1", "--bundle", str(b2), "c2"])
    assert result.returncode != 0 and "four" not in result.stdout


def test_socket_activation_passes_listen_fds(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", SCRIPT])
    result = run_with_fds(runtime, ["run", "--bundle", str(b), "c1"],
                          env={"LISTEN_FDS": "2"}, activated=True)
    assert result.returncode == 0, result
    fds, env, three, four = result.stdout.splitlines()
    assert env == "LISTEN_FDS=2 LISTEN_PID=1"
    assert (three, four) == ("three", "four")


def test_listen_fds_for_another_pid_are_ignored(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "echo LISTEN_FDS=${LISTEN_FDS-unset}; ls /proc/self/fd"])
    result = run_with_fds(runtime, ["run", "--bundle", str(b), "c1"],
                          env={"LISTEN_FDS": "2", "LISTEN_PID": "1"})
    assert result.returncode == 0, result
    first, *fds = result.stdout.split()
    assert first == "LISTEN_FDS=unset"
    assert sorted(fds, key=int) == ["0", "1", "2", "3"]
