"""Helpers for pyruntime's tests: bundles, a CLI driver, mountinfo parsing, leftover checks.

Importable from tests as ``from support import ...`` (tests/ is on sys.path via conftest).
"""

from support.checks import assert_clean_failure, assert_nothing_left, stderr_lines
from support.config import DELETE, deep_merge, default_config
from support.mountinfo import MountEntry, find_mount, parse_mountinfo
from support.rootfs import build_busybox_rootfs, clone_rootfs
from support.runtime import Runtime, runtime_command, using_other_runtime

__all__ = [
    "DELETE",
    "MountEntry",
    "Runtime",
    "assert_clean_failure",
    "assert_nothing_left",
    "build_busybox_rootfs",
    "clone_rootfs",
    "deep_merge",
    "default_config",
    "find_mount",
    "parse_mountinfo",
    "runtime_command",
    "stderr_lines",
    "using_other_runtime",
]
