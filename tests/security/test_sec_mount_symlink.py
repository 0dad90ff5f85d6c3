"""CVE-2021-30465 / CVE-2024-45310: a mount destination in the rootfs is (or is swapped
for) a symlink that points outside the rootfs, and the runtime mounts onto the host.

The attack: the image holds /evil -> <host dir> (absolute) and /evil2 -> ../../../../<host
dir> (relative), and config.json mounts a tmpfs at /evil, a bind at /evil2/sub, and asks
for /evil/newdir to be created. If the runtime followed the links from the host's root,
the tmpfs would cover the host directory and directories would appear in it.

Defence: destinations are resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
from the rootfs fd and mounted on /proc/self/fd/N of the opened target (native/safepath.c,
mounts.c): a symlink is resolved as if the rootfs were /, so everything lands inside it,
including the targets of dangling links, which are created there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import Runtime, parse_mountinfo

pytestmark = pytest.mark.root


def test_symlinked_destinations_stay_in_the_rootfs(runtime: Runtime, bundle,
                                                   tmp_path: Path) -> None:
    host = tmp_path / "host-target"
    host.mkdir()
    (host / "precious").write_text("host data\n")
    before = sorted(os.listdir(host))
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "from-bind").write_text("x")
    mounts = [{"destination": "/evil", "type": "tmpfs", "source": "tmpfs"},
              {"destination": "/evil2/sub", "type": "bind", "source": str(src),
               "options": ["rbind"]},
              {"destination": "/evil3/newdir/deeper", "type": "tmpfs", "source": "tmpfs"}]
    b = bundle(["sh", "-c", f"ls /evil /evil2/sub; readlink /evil; ls -d {host}/*; "
                            "echo done"])
    b.config["mounts"] = b.config["mounts"] + mounts
    b.write()
    root = Path(b.rootfs)
    (root / "evil").symlink_to(str(host))
    (root / "evil2").symlink_to("../../../../../../../../" + str(host).lstrip("/"))
    (root / "evil3").symlink_to(str(host))
    res = runtime.run_bundle(b, "c1", check=False)
    # the host directory: untouched, no mount on it
    assert sorted(os.listdir(host)) == before
    assert (host / "precious").read_text() == "host data\n"
    with open("/proc/self/mountinfo") as f:
        assert not [m for m in parse_mountinfo(f.read()) if m.mountpoint.startswith(str(host))]
    # everything was made inside the rootfs, under the same path (the links dangle there:
    # their targets are created, as runc does); sub and newdir are in the tmpfs at /evil
    assert res.returncode == 0, res.stderr
    assert (root / str(host).lstrip("/")).is_dir()
    assert "from-bind" in res.stdout and "done" in res.stdout
    assert f"{host}/newdir\n{host}/sub\n" in res.stdout
    assert "precious" not in res.stdout
