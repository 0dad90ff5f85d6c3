"""`list [--format table|json] [-q]`: every container under --root."""

from __future__ import annotations

import os
import sys

from pyruntime.cli.main import Globals
from pyruntime.container import state_json
from pyruntime.errors import Failure
from pyruntime.jsonio import dumps
from pyruntime.state import CorruptState, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def records(store: Store, warn: Callable[[str], None] | None = None) -> list[dict]:
    """One `state` object per container (pyruntime.api's Runtime.list() too); a corrupt
    state.json is skipped, and passed to `warn`."""
    rows = []
    for cid in store.ids():
        try:
            rows.append({**state_json(store, store.load(cid)), "owner": _owner(store, cid)})
        except CorruptState as e:  # that id only: the others are listed
            if warn is not None:
                warn(f"{e}; skipped")
        except Failure:
            continue  # a container being created or deleted right now
    return rows


def _owner(store: Store, cid: str) -> str:
    """Who owns the container's state directory, by name (runc's OWNER): the user who
    created it, which is not root under rootless use."""
    import pwd

    try:
        uid = os.stat(store.dir(cid)).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def main(g: Globals, values: dict) -> int:
    def warn(message: str) -> None:  # on stderr even with --log: `list` prints a table
        sys.stderr.write(f"pyruntime: warning: {message}\n")
        if g.log.path is not None:
            g.log.warning(message)

    rows = records(Store(g.root), warn)
    out = sys.stdout
    if values["quiet"]:
        out.write("".join(f"{r['id']}\n" for r in rows))
    elif values["format"] == "json":
        out.write(dumps(rows) + "\n")
    else:
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"],
                   r["owner"] or "root") for r in rows]
        widths = [max(12, max(len(row[i]) for row in table) + 1) for i in range(5)]
        for row in table:
            out.write("".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
                      + row[5] + "\n")
    return 0
