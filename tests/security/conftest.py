"""The security suite: one test module per class of runc CVE (docs/security.md).

Each test mounts the real attack from inside a container and shows how it fails. The
attacker's tool is `probe` (probe.c, built static once per session): it opens, attaches
and reads, and reports what worked; it never writes to what it opens.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROBE_SOURCE = Path(__file__).with_name("probe.c")
LDSO_SOURCE = Path(__file__).with_name("ldso.c")


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static-pie", "-O2", "-o", str(out), str(PROBE_SOURCE)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def ldso_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freestanding fake dynamic loader (ldso.c) that reports on /proc/self/exe."""
    out = tmp_path_factory.mktemp("ldso") / "ld.so"
    subprocess.run(["gcc", "-nostdlib", "-static-pie", "-ffreestanding", "-fno-builtin",
                    "-fno-stack-protector", "-O1", "-o", str(out), str(LDSO_SOURCE)],
                   check=True, capture_output=True)
    return out


@pytest.fixture
def with_probe(probe_binary: Path):
    """Copy the probe into a bundle's rootfs as /bin/probe; returns the bundle."""

    def install(bundle, dest: str = "bin/probe"):
        target = Path(bundle.rootfs) / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        shutil.copy2(probe_binary, target)
        return bundle

    return install
