"""`list [--format table|json] [-q]`: every container under --root."""

from __future__ import annotations

import sys

from pyruntime.cli.main import Globals
from pyruntime.container import state_json
from pyruntime.errors import Failure
from pyruntime.jsonio import dumps
from pyruntime.state import CorruptState, Store


def records(store: Store) -> list[dict]:
    """One `state` object per container (pyruntime.api's Runtime.list() too)."""
    rows = []
    for cid in store.ids():
        try:
            rows.append(state_json(store, store.load(cid)))
        except CorruptState as e:  # that id only: the others are listed
            sys.stderr.write(f"pyruntime: warning: {e}; skipped\n")
            if g.log.path is not None:
                g.log.warning(f"{e}; skipped")
        except Failure:
            continue  # a container being created or deleted right now
    return rows


def main(g: Globals, values: dict) -> int:
    rows = records(Store(g.root))
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
