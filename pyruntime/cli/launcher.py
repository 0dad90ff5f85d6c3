"""Write the `pyruntime` command: a launcher that starts Python without `site`.

A console script made by pip starts the interpreter the normal way, and `site` then reads
every .pth file in site-packages.  An editable install's .pth imports a finder that pulls
in pathlib, re, enum, urllib.parse... (measured here: ~25 ms of a ~40 ms `state`, more than
runc's whole `state`), on every call a client makes.  The launcher runs `python -I -S`
(isolated: no PYTHON* variables, no user site; no site at all) and puts on sys.path
exactly the directories pyruntime imports from, found once, when the launcher is written:
the one holding the pyruntime package, then the interpreter's site-packages (cffi's
_cffi_backend for pyruntime._native; click and the optional extras).

    python -m pyruntime.cli.launcher DEST      # `make setup` writes .venv/bin/pyruntime

Re-run it when the package or the virtualenv moves (make setup does after every install).
"""

from __future__ import annotations

import os
import sys

SHEBANG_MAX = 255  # the kernel reads at most 256 bytes of a #! line (BINPRM_BUF_SIZE)


def render(python: str, package_parent: str, site_dirs: list[str]) -> str:
    shebang = f"#!{python} -IS"
    if len(shebang) > SHEBANG_MAX or " " in python:
        raise ValueError(f"{python}: cannot be a #! interpreter (spaces or too long)")
    return (
        f"{shebang}\n"
        "# Written by `python -m pyruntime.cli.launcher` (see that module): pyruntime's\n"
        "# entry point without site's start-up cost.  Do not edit; re-run it instead.\n"
        "import sys\n"
        f"sys.path[:0] = {[package_parent]!r}\n"
        f"sys.path += {site_dirs!r}\n"
        "from pyruntime.cli.main import main\n"
        "sys.exit(main())\n"
    )


def current() -> str:
    """The launcher for this interpreter and this copy of pyruntime."""
    import site

    import pyruntime

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__)))
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    # sys.executable, not its realpath: a virtualenv is recognised by the path it is run as
    return render(sys.executable, package_parent, site_dirs)


def write(dest: str) -> None:
    """Replace `dest` atomically with the launcher (mode 0755)."""
    tmp = f"{dest}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o755)
    try:
        os.write(fd, current().encode())
    finally:
        os.close(fd)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pyruntime.cli.launcher DEST")
    write(sys.argv[1])
