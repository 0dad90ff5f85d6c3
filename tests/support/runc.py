"""runc (1.1.5, the oracle) driven like the runtime under test, on the same bundles.

`RuncRuntime` is `Runtime` with runc's argv; `runc_runtime()` gives one bound to a root
and io directory of its own, and force-deletes what it created afterwards.  `runc_run`
and `runc_cleanup` are the plain forms, and the normalisers below make two containers'
reports of themselves comparable (tests/test_differential_runc.py, tests/differential/).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.runtime import Runtime

RUNC = shutil.which("runc")
# the marks of a test module that compares with runc: runc is the other side of every
# comparison, so the module runs the runtime under test itself, as root
AGAINST_RUNC = [
    pytest.mark.root,
    pytest.mark.pyruntime_only,
    pytest.mark.skipif(RUNC is None, reason="runc (the oracle) is not installed"),
]


class RuncRuntime(Runtime):
    """`runc --root ROOT ...` with the same conveniences (run_bundle, create, start, ...)."""

    def cmd(self, *args: str | os.PathLike[str]) -> list[str]:
        assert RUNC is not None
        return [RUNC, "--root", str(self.root), *map(os.fspath, args)]


@contextlib.contextmanager
def runc_runtime(tmp_path: Path, token: str | None) -> Iterator[RuncRuntime]:
    work = tmp_path / "runc"
    root = work / "root"
    root.mkdir(parents=True, mode=0o700)
    runc = RuncRuntime(root=root, workdir=work, token=token)
    try:
        yield runc
    finally:
        for cid in runc.ids():
            runc.run("delete", "--force", cid, timeout=30)


def runc_run(root: Path, bundle: os.PathLike[str] | str, cid: str, *, cwd: Path,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`runc --root ROOT run --bundle BUNDLE CID` in the foreground, stdin /dev/null.
    stdout and stderr go through files in *cwd*, as support.Runtime's do (what the
    container writes meets the same kind of file under both runtimes: RLIMIT_FSIZE)."""
    assert RUNC, "runc is not installed"
    argv = [RUNC, "--root", str(root), "run", "--bundle", os.fspath(bundle), cid]
    out_path, err_path = cwd / f"runc-{cid}.out", cwd / f"runc-{cid}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              timeout=timeout, cwd=cwd)
    return subprocess.CompletedProcess(argv, proc.returncode,
                                       out_path.read_text(errors="replace"),
                                       err_path.read_text(errors="replace"))


def runc_cleanup(root: Path, cwd: Path) -> list[str]:
    """`delete --force` whatever runc still knows under ROOT; returns those ids."""
    if not RUNC or not root.is_dir():
        return []
    listed = subprocess.run([RUNC, "--root", str(root), "list", "-q"], capture_output=True,
                            text=True, timeout=60, cwd=cwd, stdin=subprocess.DEVNULL)
    ids = listed.stdout.split()
    for cid in ids:
        subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid],
                       capture_output=True, timeout=60, cwd=cwd, stdin=subprocess.DEVNULL)
    return ids


def sections(text: str) -> dict[str, list[str]]:
    """Split a report made of `## NAME` headers followed by lines."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def normal_mountinfo(lines: list[str]) -> list[str]:
    """Drop mount id, parent id and major:minor; keep which propagation, not its group."""
    out = []
    for line in lines:
        fields = line.split()
        if "-" not in fields[6:]:
            out.append(line)  # not a mountinfo line (an error message): keep as is
            continue
        sep = fields.index("-", 6)
        optional = sorted(re.sub(r":\d+$", "", o) for o in fields[6:sep])
        out.append(" ".join([*fields[3:6], *optional, *fields[sep:]]))
    return out


def normal_dev(lines: list[str]) -> list[str]:
    """`ls -l` without the total line and the dates; symlinks keep their targets."""
    out = []
    for line in lines:
        words = line.split()
        if not words or words[0] == "total":
            continue
        if len(words) < 8:
            out.append(line)  # an error message
            continue
        # mode links owner group (size | major, minor) month day time name [-> target]
        date_at = 6 if words[4].endswith(",") else 5
        out.append(" ".join(words[:date_at] + words[date_at + 3:]))
    return sorted(out)


def open_tmp_path_for_userns(path: Path) -> None:
    """Let a user namespace's unmapped root traverse *path*: the 0700 temp directories
    above it (pytest's) become 0711."""
    p = path
    while p != p.parent and str(p).startswith(tempfile.gettempdir() + "/"):
        if p.stat().st_mode & 0o7777 == 0o700:
            p.chmod(0o711)
        p = p.parent
