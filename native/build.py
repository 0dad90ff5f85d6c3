"""cffi builder (API mode) for pyruntime._native.

Used two ways:
  * by setuptools, through ``cffi_modules = ["native/build.py:ffibuilder"]``;
  * directly, ``python native/build.py``, which builds the extension in a
    temporary directory and copies it into ``pyruntime/`` so that
    ``import pyruntime._native`` works from the repository root.

The cdef is api.h verbatim: the header is the contract, written for both the
C compiler and cffi's parser.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from cffi import FFI

NATIVE = Path(__file__).resolve().parent
ROOT = NATIVE.parent
MODULE = "pyruntime._native"

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-D_GNU_SOURCE"]


def _paths(relative: bool) -> tuple[list[str], list[str]]:
    """Sources and include dirs, relative to the repo root when building from it.

    setuptools expects paths relative to the project root (its cwd); a direct
    build compiles from a temporary directory, so it needs absolute paths.
    """
    base = ROOT if relative else None

    def show(p: Path) -> str:
        return str(p.relative_to(base)) if base else str(p)

    sources = [show(p) for p in sorted(NATIVE.glob("*.c"))]
    return sources, [show(NATIVE)]


def make_builder(relative: bool) -> FFI:
    ffi = FFI()
    ffi.cdef((NATIVE / "api.h").read_text())
    sources, include_dirs = _paths(relative)
    ffi.set_source(
        MODULE,
        '#include <stddef.h>\n#include <stdint.h>\n#include "api.h"\n',
        sources=sources,
        include_dirs=include_dirs,
        libraries=["seccomp"],
        extra_compile_args=CFLAGS,
    )
    return ffi


def _building_from_root() -> bool:
    try:
        return Path.cwd().resolve() == ROOT
    except OSError:
        return False


ffibuilder = make_builder(relative=_building_from_root())


def build_in_place(verbose: bool = False) -> Path:
    """Build into a scratch directory, then copy the extension into pyruntime/."""
    ffi = make_builder(relative=False)
    with tempfile.TemporaryDirectory(prefix="pyrt-build-") as tmp:
        built = Path(ffi.compile(tmpdir=tmp, verbose=verbose))
        dest_dir = ROOT / "pyruntime"
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / built.name
        partial = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(built, partial)
        os.replace(partial, dest)  # atomic: a running import never sees half a file
    return dest


if __name__ == "__main__":
    print(build_in_place(verbose="-v" in sys.argv[1:]))
