"""The build id a client and a server must share for a call to be served.

A server keeps the code it started with.  After an upgrade, a server started earlier would
lay plans out in its own `struct pyrt_plan` for a client compiled against another one, and
run policy the installed package no longer has.  So the client's HELLO carries the id of
the package it was built with (the Makefile compiles it in) and the layout it was compiled
with, the worker compares them with its own, and anything else runs cold.

    python -m pyruntime.served.buildid     # the package part, for the Makefile

The id hashes every .py file of the package (by path relative to it, and content) and the
native extension; `__pycache__` is left out (byte code follows the sources).
"""

from __future__ import annotations

import hashlib
import os

import pyruntime


def _native_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("pyruntime._native")
    if spec is None or not spec.origin:
        raise SystemExit("pyruntime.served.buildid: pyruntime._native is not built")
    return spec.origin


def package_hash(package_dir: str | None = None, native: str | None = None) -> str:
    """A hash of the package's .py files and of its native extension."""
    top = package_dir or os.path.dirname(os.path.abspath(pyruntime.__file__))
    paths = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        paths += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(os.path.relpath(path, top).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    with open(native or _native_path(), "rb") as f:
        h.update(b"native\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:32]


def build_id() -> str:
    """What the client's HELLO must carry: "<package hash>:<sizeof(struct pyrt_plan)>"."""
    from pyruntime._native import ffi

    return f"{package_hash()}:{ffi.sizeof('struct pyrt_plan')}"


if __name__ == "__main__":
    print(package_hash())
