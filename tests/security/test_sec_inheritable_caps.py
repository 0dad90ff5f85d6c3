"""CVE-2022-29162: the runtime left the inheritable capability set non-empty, so a program
with inheritable file capabilities gained them through execve.

Defence: the inheritable set is exactly what process.capabilities.inheritable asks for
(nothing by default) and ambient only what is asked and allowed (native/creds.c).
"""

from __future__ import annotations

import pytest

from support import Runtime

pytestmark = pytest.mark.root


def _caps(out: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in out.splitlines()
                                        if line.startswith("Cap"))}


@pytest.mark.parametrize("user", [{"uid": 0, "gid": 0}, {"uid": 1000, "gid": 1000}])
def test_default_config_gives_no_inheritable_caps(runtime: Runtime, bundle, user) -> None:
    b = bundle(["sh", "-c", "grep ^Cap /proc/self/status; cat /proc/1/status | grep ^CapInh"],
               {"process": {"user": user}})
    caps = _caps(runtime.run_bundle(b, "c1").stdout)
    assert caps["CapInh"] == 0 and caps["CapAmb"] == 0


def test_inheritable_only_as_asked(runtime: Runtime, bundle) -> None:
    want = ["CAP_KILL"]
    caps_cfg = {"bounding": want, "effective": want, "permitted": want, "inheritable": want,
                "ambient": []}
    b = bundle(["sh", "-c", "grep ^Cap /proc/self/status"],
               {"process": {"capabilities": caps_cfg}})
    caps = _caps(runtime.run_bundle(b, "c1").stdout)
    assert caps["CapInh"] == 1 << 5 and caps["CapAmb"] == 0
