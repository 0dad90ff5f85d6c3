"""A Docker-style default profile blocks keyctl(2).

The kernel keyring is not namespaced: a container reaching keyctl can look up (and, with
the permission bits, read) the keys of the session keyring it inherited, and the keys of
its uid across the host. Docker's default profile leaves keyctl, add_key and request_key
out, so they fall to the default action (EPERM). The attack: the probe asks for the
session keyring's id (KEYCTL_GET_KEYRING_ID), the first step of any keyring use.

Shown both ways: the same container without the profile gets an id (keyctl reaches the
kernel), with the profile it gets EPERM while busybox itself runs normally.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime
from support.seccomp_profiles import docker_default_profile

pytestmark = pytest.mark.root

SCRIPT = ("probe keyctl; ls / >/dev/null && echo hi | sed s/hi/ho/ && "
          "grep Seccomp: /proc/self/status")


@pytest.fixture(autouse=True)
def seccomp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private filter cache (the runtime inherits the environment), as test_seccomp."""
    path = tmp_path / "seccomp-cache"
    monkeypatch.setenv("PYRUNTIME_SECCOMP_CACHE", str(path))
    return path


def test_docker_profile_blocks_keyctl(runtime: Runtime, bundle, with_probe) -> None:
    b = with_probe(bundle(["sh", "-c", SCRIPT],
                          {"linux": {"seccomp": docker_default_profile()}}))
    res = runtime.run_bundle(b, "k1", check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[0] == "keyctl: denied errno=1 (Operation not permitted)", res.stdout
    assert lines[1] == "ho", res.stdout  # busybox is not bothered by the profile
    assert lines[2].split() == ["Seccomp:", "2"], res.stdout  # SECCOMP_MODE_FILTER


def test_without_the_profile_keyctl_reaches_the_kernel(runtime: Runtime, bundle,
                                                       with_probe) -> None:
    b = with_probe(bundle(["sh", "-c", SCRIPT]))
    res = runtime.run_bundle(b, "k1", check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[0] == "keyctl: ok", res.stdout  # the attack's instrument works
    assert lines[2].split() == ["Seccomp:", "0"], res.stdout
