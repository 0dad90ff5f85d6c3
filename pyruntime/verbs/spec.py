"""`spec`: write a default config.json into the bundle, like `runc spec`."""

from __future__ import annotations

import json
import os

from pyruntime.cli.main import Globals
from pyruntime.errors import Failure
from pyruntime.spec.default import default_spec


def main(g: Globals, values: dict) -> int:
    path = os.path.join(values["bundle"], "config.json")
    if os.path.exists(path):
        raise Failure(f"{path}: file exists, remove it first")
    data = json.dumps(default_spec(rootless=values["rootless"]), indent="\t")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:
        raise Failure(f"spec: bundle {values['bundle']}: no such directory") from None
    with os.fdopen(fd, "w") as f:
        f.write(data)
    return 0
