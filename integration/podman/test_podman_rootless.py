"""Rootless podman 4.3 driving pyruntime: a user the module creates (useradd, with
/etc/subuid and /etc/subgid ranges through usermod; userdel removes all) runs
`podman --runtime .venv/bin/pyruntime` with storage of its own.  podman makes the user
namespace (newuidmap) and runs the runtime as root in it; pyruntime keeps its state in
the user's $XDG_RUNTIME_DIR/pyruntime (README, Rootless).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from clients import IMAGE, REPO, describe, sigkill

CLIENT = REPO / ".venv" / "bin" / "pyruntime"


def _user_pids(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except FileNotFoundError:
                pass
    return pids


class RootlessPodman:
    def __init__(self, name: str, directory: Path) -> None:
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid, self.gid, self.dir = pw.pw_uid, pw.pw_gid, directory
        self.xdg = directory / "xdg"

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        d = self.dir
        argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "podman", "--root", str(d / "storage"), "--runroot", str(self.xdg / "run"),
                "--tmpdir", str(self.xdg / "tmp"), "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--storage-driver", "overlay",
                "--runtime", str(CLIENT), *args]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(d),
               "XDG_RUNTIME_DIR": str(self.xdg), "USER": self.name}
        return subprocess.run(argv, env=env, cwd=d, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)


def _check_usable_by(p: RootlessPodman) -> None:
    """The user must be able to run this checkout's pyruntime (a clone under /root is not:
    README, Rootless); say so, rather than leave podman's "permission denied" to explain."""
    r = subprocess.run(["setpriv", f"--reuid={p.uid}", f"--regid={p.gid}", "--init-groups",
                        str(CLIENT), "--version"], capture_output=True, text=True, cwd="/",
                       env={"PATH": "/usr/bin:/bin"}, timeout=60)
    if r.returncode:
        blocked = next((str(d) for d in reversed(CLIENT.parents)
                        if not d.stat().st_mode & stat.S_IXOTH), None)
        pytest.fail(f"user {p.name} cannot run {CLIENT}: "
                    f"{f'{blocked} is not searchable by other users; ' if blocked else ''}"
                    f"{r.stderr.strip()[-300:]} -- the checkout must be o+rx down to it, "
                    "and the venv built from /usr/bin/python3 (`make setup`)")


@pytest.fixture(scope="module")
def rootless_podman(busybox_archive: Path):
    if shutil.which("podman") is None or shutil.which("newuidmap") is None:
        pytest.fail("podman or newuidmap (package uidmap) is not installed")
    name = f"pyrt-podman-{os.getpid()}"
    start = 1_600_000_000 + os.getpid() % 1000 * 65536
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell",
                    "/usr/sbin/nologin", name], check=True, capture_output=True)
    directory = Path(tempfile.mkdtemp(prefix="pyrt-podman-rootless-"))
    p = None
    try:
        subprocess.run(["usermod", "--add-subuids", f"{start}-{start + 65535}",
                        "--add-subgids", f"{start}-{start + 65535}", name], check=True,
                       capture_output=True)
        p = RootlessPodman(name, directory)
        _check_usable_by(p)
        p.xdg.mkdir(mode=0o700)
        shutil.copy(busybox_archive, directory / "busybox.tar")
        subprocess.run(["chown", "-R", f"{p.uid}:{p.gid}", str(directory)], check=True)
        r = p("load", "--input", str(directory / "busybox.tar"))
        assert r.returncode == 0, describe(r)
        yield p
    finally:
        if p is not None:
            p("rm", "--all", "--force", "--time", "0")
            p("unshare", "rm", "-rf", str(directory / "storage"))  # the user's mapped files
            # podman's rootless pause process, conmon: all started for this user here
            for _ in range(50):
                pids = _user_pids(p.uid)
                if not pids:
                    break
                sigkill(pids)
                time.sleep(0.1)
        shutil.rmtree(directory, ignore_errors=True)
        r = subprocess.run(["userdel", name], capture_output=True, text=True)
        assert r.returncode == 0, f"userdel {name}: {r.stderr}"


def test_rootless_podman_runs_a_container_through_pyruntime(rootless_podman) -> None:
    p = rootless_podman
    r = p("run", "--rm", "--network", "none", IMAGE, "sh", "-c",
          "id -u; cat /proc/self/uid_map; echo x > /dev/null && echo null")
    assert r.returncode == 0, describe(r)
    lines = r.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(p.uid), "1"]
    assert "null" in lines, describe(r)
    assert (p.xdg / "pyruntime").is_dir()  # pyruntime's state: the user's, not /run
    assert os.listdir(p.xdg / "pyruntime") == []  # --rm: deleted


def test_rootless_podman_exit_code_and_exec(rootless_podman) -> None:
    p = rootless_podman
    r = p("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 3")
    assert r.returncode == 3, describe(r)
    r = p("run", "--detach", "--name", "s1", "--network", "none", IMAGE, "sleep", "1000")
    assert r.returncode == 0, describe(r)
    r = p("exec", "s1", "sh", "-c", "id -u; cat /proc/1/cmdline")
    assert (r.returncode, r.stdout) == (0, "0\nsleep\x001000\x00"), describe(r)
    r = p("rm", "--force", "--time", "0", "s1")
    assert r.returncode == 0, describe(r)
