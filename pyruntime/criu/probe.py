"""Whether CRIU works on this kernel (`criu check`): the test suites' tests marked criu
need it; the cgroup v2 lane's kernel has it, this host's does not."""

from __future__ import annotations

import subprocess


def criu_does_not_work() -> str:
    """Why `criu check` fails here ("" when it passes)."""
    try:
        r = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"criu check: {e}"
    if r.returncode == 0:
        return ""
    errors = [ln for ln in r.stderr.splitlines() if "Error" in ln] or [r.stderr.strip()]
    return "criu check: " + errors[0].split("): ", 1)[-1]
