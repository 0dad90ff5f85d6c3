"""A container whose stdio is the host's /dev/null (conmon gives a detached container
that) gets its own /dev/null instead, as runc does it after pivot_root: nothing of the
host's /dev stays open inside, and CRIU can dump the container. Run under runc too."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support import Runtime
from support.runc import RUNC

pytestmark = pytest.mark.root

# device:inode of fds 0-2 and of the container's /dev/null, and fd 1's access mode
# (of the shell itself, $$, read in command substitutions: a redirection of busybox's
# in-process applets would change the shell's own fd 1)
PROBE = ('a=$(stat -L -c %d:%i /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2 /dev/null); '
         'b=$(grep flags /proc/$$/fdinfo/1); printf "%s\n%s\n" "$a" "$b" > /out/tmp; '
         'mv /out/tmp /out/ids')


def run_with_dev_null(argv: list[str], cwd: Path) -> int:
    with open("/dev/null", "r+b") as null:
        return subprocess.run(argv, stdin=null, stdout=null, stderr=null, cwd=cwd,
                              timeout=60).returncode


def probe(out: Path) -> list[str]:
    deadline = time.monotonic() + 60
    while not (out / "ids").exists():
        assert time.monotonic() < deadline, "the container did not write its probe"
        time.sleep(0.05)
    lines = (out / "ids").read_text().split("\n")
    assert len(set(lines[:4])) == 1, lines  # all four are the container's /dev/null
    return lines


@pytest.mark.parametrize("runtime_name", ["pyruntime", "runc"])
def test_host_dev_null_stdio_is_reopened(runtime: Runtime, bundle, tmp_path: Path,
                                         runtime_name: str) -> None:
    if runtime_name == "runc" and RUNC is None:
        pytest.skip("runc (the oracle) is not installed")
    out = tmp_path / f"out-{runtime_name}"
    out.mkdir()
    b = bundle(["sh", "-c", PROBE], name=f"b-{runtime_name}")
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                               "options": ["rbind", "rw"]})
    b.write()
    # detached: the runtime hands its own stdio to the container (runc's foreground run
    # would put pipes of its own in between)
    if runtime_name == "runc":
        cmd = [RUNC, "--root", str(tmp_path / "runc-root")]
    else:
        cmd = runtime.cmd()
    assert run_with_dev_null([*cmd, "run", "-d", "--bundle", str(b), "c1"], tmp_path) == 0
    try:
        lines = probe(out)
    finally:
        subprocess.run([*cmd, "delete", "--force", "c1"], capture_output=True, timeout=60)
    host = Path("/dev/null").stat()
    assert lines[0] != f"{host.st_dev}:{host.st_ino}"  # not the host's /dev/null
    # the access mode is kept: fd 1 was opened read-write (O_RDWR = 02)
    assert lines[4].split()[1][-1] == "2", lines
