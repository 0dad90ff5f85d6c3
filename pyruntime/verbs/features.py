"""`features`: what this runtime implements, as runtime-spec features.md JSON.

It lists only what works: each entry here is exercised by a test that runs a container.
"""

from __future__ import annotations

import json
import sys

from pyruntime import SPEC_VERSION, __version__
from pyruntime.cli.main import Globals


def features() -> dict:
    from pyruntime.hooks import KINDS
    from pyruntime.plan.linux_consts import CAPABILITIES, NAMESPACE_FLAGS
    from pyruntime.plan.mount_options import (
        EXTENSION_OPTIONS,
        FLAG_OPTIONS,
        PROPAGATION_OPTIONS,
        RECURSIVE_OPTIONS,
    )

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(KINDS),  # tests/test_hooks.py
        "mountOptions": sorted(set(FLAG_OPTIONS) | set(PROPAGATION_OPTIONS)  # tests/
                               | set(RECURSIVE_OPTIONS) | set(EXTENSION_OPTIONS)),  # test_mount*
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": list(CAPABILITIES),
            # v2: the v2 lane (make test-cgroupv2) runs the cgroup tests, devices included
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False,
                       "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "netDevices": {"enabled": True},
            # the modes and flags tests/test_sched.py sees in /proc/self/numa_maps
            "memoryPolicy": {"modes": ["MPOL_BIND", "MPOL_DEFAULT", "MPOL_INTERLEAVE",
                                       "MPOL_LOCAL", "MPOL_PREFERRED"],
                             "flags": ["MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]},
            "mountExtensions": {"idmap": {"enabled": True}},  # tests/test_mount_options.py
        },
        # runc's key: checkpoint and restore exist (they need criu at run time)
        "annotations": {"io.github.pyruntime.version": __version__,
                        "org.opencontainers.runc.checkpoint.enabled": "true"},
    }


def _seccomp() -> dict:
    """Each entry is exercised by tests/test_seccomp.py."""
    from pyruntime.seccomp import profile as sp

    flags = sorted(sp.FLAGS)
    return {
        "enabled": True,
        "actions": sorted(sp.ACTIONS),
        "operators": sorted(sp.OPERATORS),
        "archs": ["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],  # tested here
        "knownFlags": flags,
        "supportedFlags": flags,
    }


def main(g: Globals, values: dict) -> int:
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
