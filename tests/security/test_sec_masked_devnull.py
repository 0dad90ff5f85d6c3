"""CVE-2025-31133: the /dev/null used to mask paths is swapped, so that masking bind-mounts
something else (a host file, a symlink to /proc/sys/kernel/core_pattern) over the masked
paths, or makes the masked file writable.

The attack: config.json bind-mounts a regular file (or the image has a symlink) at
/dev/null before maskedPaths are applied. Defence: /dev/null is opened in the container
root without following links and checked by fd to be the character device 1:3 before it
is bind-mounted (native/rootfs.c); anything else is refused, nothing is masked with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root


def test_bind_mounted_dev_null_is_refused(runtime: Runtime, bundle, tmp_path: Path) -> None:
    fake = tmp_path / "not-null"
    fake.write_text("attacker controlled\n")
    b = bundle(["sh", "-c", "cat /proc/kcore | head -c 20; echo; cat /dev/null"])
    b.config["mounts"].append({"destination": "/dev/null", "type": "bind", "source": str(fake),
                               "options": ["bind"]})
    b.write()
    res = runtime.run_bundle(b, "c1", check=False)
    assert res.returncode != 0
    assert "attacker controlled" not in res.stdout
    # refused at the first step that meets it: the device step cannot replace the bind
    # mount with the real node (EBUSY), and masking would refuse anything but 1:3
    assert "/dev/null" in res.stderr, res.stderr
    assert fake.read_text() == "attacker controlled\n"
    assert runtime.state_dirs() == []


def test_dev_null_symlink_in_the_image_is_not_followed(runtime: Runtime, bundle) -> None:
    # no /dev tmpfs: the image's own /dev/null is a symlink to a file of the image
    b = bundle(["sh", "-c", "cat /dev/null; echo rc=$?"])
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/dev"]
    b.config["linux"]["devices"] = []
    b.write()
    root = Path(b.rootfs)
    (root / "etc" / "secret").write_text("image data\n")
    (root / "dev" / "null").symlink_to("/etc/secret")
    res = runtime.run_bundle(b, "c1", check=False)
    # either the runtime replaced the link by the real device, or it refused to mask
    if res.returncode == 0:
        assert "image data" not in res.stdout
    else:
        assert "/dev/null" in res.stderr, res.stderr
