"""A base temp directory of this pytest session's own.

pytest's default, /tmp/pytest-of-<user>, is shared by every pytest session of the user and
each session resets its mode to 0700 when it starts.  Tests with a user namespace make the
directories above their bundle traversable (support/runc.py: open_tmp_path_for_userns), so
another session starting meanwhile (two checkouts' suites, `make test` next to a targeted
run) made those containers fail to reach their rootfs.  Here every session gets its own
directory under /tmp/pyrt-pytest-<uid>/; nobody else changes its mode.  A session that
passed removes its directory; a failed one keeps it for reading, and directories older
than a day are removed when the next session starts.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

KEEP_SECONDS = 24 * 3600


def session_basetemp() -> Path | None:
    """A fresh directory for --basetemp, or None (pytest's default) when the parent
    directory is not ours to use (someone else's, or not a directory)."""
    parent = Path(tempfile.gettempdir()) / f"pyrt-pytest-{os.geteuid()}"
    try:
        parent.mkdir(mode=0o711, exist_ok=True)
        st = parent.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return None
    os.chmod(parent, 0o711)  # traversable by a user namespace's unmapped root
    _remove_old(parent)
    return Path(tempfile.mkdtemp(prefix="session-", dir=parent))


def _remove_old(parent: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for entry in parent.iterdir():
        try:
            if entry.lstat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def remove_if_passed(basetemp: Path, exitstatus: int) -> None:
    if exitstatus == 0:
        shutil.rmtree(basetemp, ignore_errors=True)
