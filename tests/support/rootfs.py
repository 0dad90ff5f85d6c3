"""The busybox rootfs lives in the package (pyruntime/api/rootfs.py), with Bundle.busybox."""

from pyruntime.api.rootfs import build_busybox_rootfs, clone_rootfs, find_busybox

__all__ = ["build_busybox_rootfs", "clone_rootfs", "find_busybox"]
