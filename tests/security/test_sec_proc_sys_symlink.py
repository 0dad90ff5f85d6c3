"""CVE-2023-27561 (and CVE-2019-19921): /proc or /sys in the rootfs is a symlink, so that
procfs/sysfs gets mounted somewhere the container controls (or the runtime's later writes
through /proc go somewhere else).

The attack: the image's /proc is a symlink to /tmp/fakeproc (or /sys to /tmp/fakesys, or
/proc to an absolute host path). Defence: refused with a clear error naming the path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root


@pytest.mark.parametrize("name,target", [("proc", "/tmp/fakeproc"), ("sys", "/tmp/fakesys"),
                                         ("proc", "/proc"), ("sys", "../tmp")])
def test_symlinked_proc_or_sys_is_refused(runtime: Runtime, bundle, name: str,
                                          target: str) -> None:
    b = bundle(["true"])
    root = Path(b.rootfs)
    (root / "tmp" / "fakeproc").mkdir()
    (root / "tmp" / "fakesys").mkdir()
    (root / name).rmdir()
    (root / name).symlink_to(target)
    res = runtime.run("create", "--bundle", b, "c1")
    assert res.returncode != 0, f"a container with a symlinked /{name} was created"
    assert f"/{name}" in res.stderr and "symlink" in res.stderr, res.stderr
    assert runtime.state_dirs() == []
