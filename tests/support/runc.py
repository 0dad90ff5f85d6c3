"""runc (1.1.5, the oracle) driven like the runtime under test, on the same bundles.

`RuncRuntime` is `Runtime` with runc's argv; `runc_runtime()` gives one bound to a root
and io directory of its own, and force-deletes what it created afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from support.runtime import Runtime

RUNC = shutil.which("runc")


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
