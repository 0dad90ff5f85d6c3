"""A corrupt state.json harms its own id only: `list` skips it with a warning on stderr,
`state` names it, `delete --force` removes it (killing what its cgroups hold)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import Runtime
from support.cgroups import find_cgroups
from support.leftovers import wait_for_no_leftovers

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

CORRUPT = {
    "truncated": '{"id": "c2", "pid": ',
    "not-an-object": "[1, 2]",
    "pid-a-string": '{"id": "c2", "pid": "12", "start_time": 1}',
    "cgroup-a-list": '{"id": "c2", "pid": 1, "start_time": 1, "cgroup": []}',
    "relative-cgroup-path": '{"id": "c2", "cgroup": {"paths": {"": "x"}, "created": []}}',
    "other-id": '{"id": "c1", "pid": 1, "start_time": 1}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "empty": "",
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_state_is_that_ids_only(runtime: Runtime, bundle, kind: str) -> None:
    runtime.create(bundle(["sleep", "1000"], name="one"), "c1")
    runtime.create(bundle(["sleep", "1000"], name="two"), "c2")
    init2 = runtime.state("c2")["pid"]
    (runtime.root / "c2" / "state.json").write_text(CORRUPT[kind])

    listed = runtime.run("list", "--format", "json", check=True)
    assert [c["id"] for c in json.loads(listed.stdout)] == ["c1"]
    warnings = [line for line in listed.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "c2" in warnings[0] and "warning" in warnings[0], warnings
    assert runtime.run("list", "-q", check=True).stdout == "c1\n"

    state = runtime.run("state", "c2")
    lines = [line for line in state.stderr.splitlines() if line.strip()]
    assert state.returncode == 1 and len(lines) == 1, state
    assert "c2" in lines[0] and "state.json" in lines[0] and "internal" not in lines[0]
    assert runtime.state("c1")["status"] == "created"

    plain = runtime.run("delete", "c2")
    assert plain.returncode == 1 and "--force" in plain.stderr, plain
    runtime.run("delete", "--force", "c2", check=True)
    assert not (runtime.root / "c2").exists()
    for _ in range(100):  # its init, found through its cgroups, is gone
        if not os.path.exists(f"/proc/{init2}") or _zombie(init2):
            break
        import time

        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{init2}") or _zombie(init2)
    runtime.create(bundle(["sleep", "1000"], name="again"), "c2")  # the id is free again
    runtime.run("delete", "--force", "c2", check=True)
    runtime.run("delete", "--force", "c1", check=True)
    left = wait_for_no_leftovers(runtime.workdir, runtime.token, None, runtime.root)
    assert not left, left.report()
    assert find_cgroups(runtime.token) == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True
