"""`ps [--format table|json] ID [PS_ARGS...]`: the container's processes.

json: an array of host pids (what containerd reads). table: `ps` (default `-ef`)
filtered to the container's pids, as runc does; without a `ps` binary, PID and CMD
from /proc.
"""

from __future__ import annotations

import sys

from pyruntime.cgroups import of_container
from pyruntime.cli.main import Globals
from pyruntime.errors import Failure, NotRunning
from pyruntime.jsonio import dumps
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    state = store.load(values["container_id"])
    if store.status(state) == "stopped":
        raise NotRunning(state.id)
    pids = sorted(of_container(state).pids())
    if values["format"] == "json":
        if values["ps_args"]:
            raise Failure("ps: ps arguments need --format table")
        sys.stdout.write(dumps(pids) + "\n")
        return 0
    sys.stdout.write(_table(pids, values["ps_args"] or ["-ef"]))
    return 0


def _table(pids: list[int], ps_args: list[str]) -> str:
    import shutil
    import subprocess

    ps = shutil.which("ps")
    if ps is None:
        return "PID CMD\n" + "".join(f"{pid} {_cmdline(pid)}\n" for pid in pids)
    out = subprocess.run([ps, *ps_args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise Failure(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise Failure(f"ps {' '.join(ps_args)}: its output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
