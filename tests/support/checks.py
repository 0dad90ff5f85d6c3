"""Assertions shared by the tests."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import TYPE_CHECKING

from support.leftovers import find_mounts, find_processes

if TYPE_CHECKING:
    from support.runtime import Runtime


def wait_for(predicate, what: str = "condition", timeout: float = 60):
    """Poll `predicate` until it returns something true (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _show(result: subprocess.CompletedProcess[str]) -> str:
    from support.runtime import describe

    return describe(result)


def assert_clean_failure(
    result: subprocess.CompletedProcess[str],
    runtime: Runtime,
    cid: str | None,
    mentions: str | re.Pattern[str] | tuple[str | re.Pattern[str], ...] = (),
    exit_code: int | None = 1,
) -> str:
    """The verb failed as the contract says, and left nothing behind.

    - exit code *exit_code* (the contract: 1; None: any non-zero),
    - exactly one non-empty line on stderr, which contains one of *mentions*
      (case-insensitive substrings, or regexes),
    - no <root>/<cid>, no mount and no process of this test (assert_nothing_left).
    Returns the error line.
    """
    __tracebackhide__ = True
    if exit_code is None:
        assert result.returncode != 0, f"expected a failure\n{_show(result)}"
    else:
        assert result.returncode == exit_code, f"expected exit {exit_code}\n{_show(result)}"
    lines = stderr_lines(result)
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}\n{_show(result)}"
    line = lines[0]
    if isinstance(mentions, str | re.Pattern):
        mentions = (mentions,)
    if mentions:
        def hit(m: str | re.Pattern[str]) -> bool:
            if isinstance(m, re.Pattern):
                return m.search(line) is not None
            return m.lower() in line.lower()

        assert any(hit(m) for m in mentions), (
            f"error line does not name any of {[getattr(m, 'pattern', m) for m in mentions]}:"
            f"\n{_show(result)}"
        )
    assert_nothing_left(runtime, cid)
    return line


def assert_nothing_left(runtime: Runtime, cid: str | None, grace: float = 2.0) -> None:
    """No <root>/<cid> (checked literally, so an id like "../x" is checked where it would
    land), no mount mentioning the test's tmp path, no process of the test."""
    __tracebackhide__ = True
    if cid:
        target = os.path.join(runtime.root, cid)
        assert not os.path.lexists(target), f"{target} was left behind"
    deadline = time.monotonic() + grace
    while True:
        mounts = find_mounts(runtime.workdir)
        procs = find_processes(runtime.workdir, runtime.token)
        if not (mounts or procs) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not mounts, "mounts left behind:\n" + "\n".join(mounts)
    assert not procs, "processes left behind:\n" + "\n".join(map(str, procs))
