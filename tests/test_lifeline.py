"""A runtime killed before it hands the container over takes its init with it.

Without this, an init paused for the runtime (hooks, the exec fifo) waits forever once
the runtime is gone: nobody releases it, and nobody knows its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from support import Runtime
from support.cgroups import find_cgroups, remove_cgroups

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_init_dies_with_a_runtime_killed_before_start(runtime: Runtime, bundle,
                                                      tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    # the hook's pid in the marker: it is the runtime's child when cold, the server
    # worker's when served (make test-served), so it is found by pid, not by parent
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {marker}.tmp; "
                                        f"mv {marker}.tmp {marker}; exec sleep 30"],
            "timeout": 60}
    b = bundle(["true"], {"hooks": {"createRuntime": [hook]}})
    proc = runtime.popen("run", "--bundle", b, "c1")
    hook_pids: list[int] = []
    init = 0
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the createRuntime hook never ran"
            time.sleep(0.05)
        # the runtime's children now: the init (CLONE_PARENT), and the hook when cold
        hook_pids = [int(marker.read_text())]
        init_pids = [p for p in _children(proc.pid) if p not in hook_pids]
        assert len(init_pids) == 1, init_pids
        init = init_pids[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()  # not communicate(): a surviving init would hold the pipes open
        deadline = time.monotonic() + 10
        while _alive(init):
            assert time.monotonic() < deadline, "the init outlived the killed runtime"
            time.sleep(0.05)
    finally:
        if init and _alive(init):  # the failure this test catches: end it, by pid
            os.kill(init, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in hook_pids:  # the orphaned hook, started by the killed runtime
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # a runtime killed mid-create leaves its state dir and cgroups, as runc does
        shutil.rmtree(runtime.root / "c1", ignore_errors=True)
        remove_cgroups(find_cgroups(runtime.token))
