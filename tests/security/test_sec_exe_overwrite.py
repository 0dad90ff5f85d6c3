"""CVE-2019-5736: the container overwrites the runtime's binary through /proc/self/exe.

The init is a fork of the Python runtime, so until execve its /proc/self/exe is the host's
python. The attack makes the init execute /proc/self/exe (directly, through a symlink, or
as a #! interpreter): the kernel then maps the host binary and, because it is dynamic,
loads its ELF interpreter from the container's filesystem. The image ships its own
/lib64/ld-linux-x86-64.so.2 (here: the probe), which runs with /proc/self/exe naming the
host binary: it could keep an O_PATH handle and write the binary once no longer busy.

Defence (native/exesafe.c): init notes its executable's identity before the rootfs and,
right before execve, refuses a program or #! interpreter with that identity.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support import Runtime

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

LDSO = "lib64/ld-linux-x86-64.so.2"


def host_identity() -> str:
    st = os.stat("/proc/self/exe")  # the runtime runs on this same python
    return f"{st.st_dev}:{st.st_ino}"


def install_ldso(b, ldso: Path) -> None:
    """The image's "dynamic loader" is the attacker's code."""
    target = Path(b.rootfs) / LDSO
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ldso, target)


def evil_bundle(bundle, ldso: Path, args: list[str]):
    b = bundle(args)
    install_ldso(b, ldso)
    root = Path(b.rootfs)
    (root / "bin" / "evil").symlink_to("/proc/self/exe")
    (root / "bin" / "evil-script").write_text("#!/proc/self/exe\n")
    (root / "bin" / "evil-script").chmod(0o755)
    (root / "bin" / "evil-nested").write_text("#!/bin/evil-script\n")
    (root / "bin" / "evil-nested").chmod(0o755)
    return b


@pytest.mark.parametrize("entry", ["/proc/self/exe", "/bin/evil", "/bin/evil-script",
                                   "/bin/evil-nested", "/proc/1/exe"])
def test_container_cannot_run_the_runtime_binary(runtime: Runtime, bundle, ldso_binary,
                                                 entry: str) -> None:
    b = evil_bundle(bundle, ldso_binary, [entry])
    res = runtime.run_bundle(b, "x1", check=False)
    # had the host binary been mapped, the probe (as its ELF interpreter) would print
    # "interpreter of: ..." and the host binary's identity, and could keep a handle to it
    assert "interpreter of" not in res.stdout, res.stdout
    assert host_identity() not in res.stdout
    assert res.returncode != 0
    assert "it is the runtime's own executable (CVE-2019-5736)" in res.stderr, res.stderr


def test_the_fake_loader_does_report(runtime: Runtime, bundle, ldso_binary) -> None:
    """The attack's instrument works: a dynamic program of the image gets the fake loader,
    which reports that program as /proc/self/exe, and gets a handle to it."""
    b = bundle(["/bin/dyn"])
    install_ldso(b, ldso_binary)
    shutil.copy2("/usr/bin/true", Path(b.rootfs) / "bin" / "dyn")  # a dynamic ELF
    res = runtime.run_bundle(b, "x1", check=False)
    assert "interpreter of: /bin/dyn" in res.stdout, res.stdout + res.stderr
    assert "open_path: ok" in res.stdout


def test_after_execve_nothing_of_the_runtime_is_mapped(runtime: Runtime, bundle,
                                                       with_probe) -> None:
    b = with_probe(bundle(["sh", "-c", "probe exe 1; cat /proc/1/maps /proc/self/maps"]))
    res = runtime.run_bundle(b, "x1")
    assert "readlink: ok /bin/busybox" in res.stdout, res.stdout
    assert host_identity() not in res.stdout
    assert "python" not in res.stdout and "pyruntime" not in res.stdout and "_native" not in \
        res.stdout
