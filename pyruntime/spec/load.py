"""Read a bundle's config.json into the typed model, with errors that name the JSON path."""

from __future__ import annotations

import os

from pyruntime import jsonio
from pyruntime.errors import Failure, errno_text
from pyruntime.spec.model import Spec
from pyruntime.spec.record import DecodeError, decode


def load_bundle_config(bundle: str) -> Spec:
    """Load and validate `<bundle>/config.json`; raise Failure with one clear line."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if not os.path.isdir(bundle):
            raise Failure(f"bundle {bundle}: no such directory") from None
        raise Failure(f"config.json: not found in bundle {bundle}") from None
    except OSError as e:
        raise Failure(f"config.json: {errno_text(e.errno)}") from None
    return parse_config(raw)


def decode_json(raw: bytes | str, cls: type, name: str) -> object:
    """JSON text into the model class `cls`; errors are one line naming `name` and the path."""
    try:
        data = jsonio.loads(raw)
    except ValueError as e:
        raise Failure(f"{name}: invalid JSON: {e}") from None
    try:
        return decode(cls, data, "")
    except DecodeError as e:
        raise Failure(f"{name}: {e}") from None


def parse_config(raw: bytes | str) -> Spec:
    """Decode and validate config.json text."""
    spec = decode_json(raw, Spec, "config.json")
    from pyruntime.spec.validate import validate

    validate(spec)
    return spec
