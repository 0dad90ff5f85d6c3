"""The verbs clients call per container import nothing heavy (no timing asserted).

Each verb runs through the launcher (python -I -S, as `make setup` installs it) under
`-X importtime`, and the modules it imported are checked against a list of those that cost
milliseconds here: click (40-60 ms), json and re (~10 ms: use pyruntime.jsonio), signal
(imports enum: use _signal), typing, pathlib, subprocess...
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyruntime.cli import launcher
from support.runtime import using_other_runtime

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

FORBIDDEN = frozenset({
    "click", "json", "re", "enum", "signal", "typing", "pathlib", "subprocess", "shutil",
    "dataclasses", "msgspec", "pyroute2", "tempfile", "logging", "datetime", "argparse",
    "inspect", "ast", "threading", "urllib3",
})


def imported(tmp_path: Path, root: Path, *args: str) -> set[str]:
    """Run one verb; return the modules it imported."""
    entry = tmp_path / "pyruntime-launcher"
    if not entry.exists():
        launcher.write(str(entry))
    log = tmp_path / "importtime.txt"
    with open(log, "w") as err:  # a file: a created init keeps the runtime's stdio open
        proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(entry),
                               "--root", str(root), *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}: " + "\n".join(
        line for line in text.splitlines() if not line.startswith("import time:"))
    return {line.rsplit("|", 1)[1].strip() for line in text.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.skipif(using_other_runtime(), reason="pyruntime's own imports")
def test_hot_verbs_import_nothing_heavy(tmp_path: Path, runtime, bundle) -> None:
    b = bundle(("sleep", "60"))
    steps = [
        ("create", "--bundle", str(b), "c1"),
        ("start", "c1"),
        ("state", "c1"),
        ("ps", "--format", "json", "c1"),
        ("exec", "c1", "true"),
        ("pause", "c1"),
        ("resume", "c1"),
        ("kill", "c1", "KILL"),
        ("delete", "--force", "c1"),
    ]
    heavy = {}
    for args in steps:
        found = imported(tmp_path, runtime.root, *args) & FORBIDDEN
        if found:
            heavy[args[0]] = sorted(found)
    assert not heavy, f"hot verbs import heavy modules: {heavy}"
