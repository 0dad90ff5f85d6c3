"""Every integer of the model has a width and a range, and the decoder refuses a value
outside it with the JSON path, before anything is made; no root needed.

The cases are generated from the model itself (spec/model.py), so a field added there is
covered here without touching this file; a plain `int` there fails the first test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyruntime.errors import Failure
from pyruntime.spec import model
from pyruntime.spec.default import default_spec
from pyruntime.spec.load import parse_config
from pyruntime.spec.record import Record

# where each record sits in config.json: (the record's JSON path, the class); dict keys
# and list indexes name the first item (lists get one item: [0])
Field = tuple[str, str, object]  # (JSON path of the field, attribute type, record class)


def _int_fields(cls: type[Record], path: str) -> Iterator[tuple[str, object, type[Record], str]]:
    """(JSON path, parsed type, owning record, attribute) of every integer under cls."""
    for attr, key, t, _required, _default in cls._schema():
        sub = f"{path}.{key}" if path else key
        while t.kind in ("list", "dict"):
            sub += "[0]" if t.kind == "list" else ".k"
            t = t.item
        if t.kind == "int":
            yield sub, t, cls, attr
        elif t.kind == "record":
            yield from _int_fields(t.record, sub)


FIELDS = list(_int_fields(model.Spec, ""))


def test_every_integer_has_a_width() -> None:
    assert len(FIELDS) > 60
    unsized = [path for path, t, _cls, _attr in FIELDS if t.bounds is None]
    assert unsized == []


def _minimal(cls: type[Record]) -> dict:
    """The smallest object of `cls` the decoder accepts: required fields only."""
    out: dict = {}
    for _attr, key, t, required, _default in cls._schema():
        if required:
            out[key] = _value(t)
    return out


def _value(t) -> object:  # noqa: ANN001 - record.py's parsed type
    if t.kind == "record":
        return _minimal(t.record)
    if t.kind == "list":
        return []
    if t.kind == "dict":
        return {}
    if t.kind == "int":
        return t.bounds[1]
    return {"str": "x", "bool": False, "float": 0, "Any": None}[t.kind]


def _config_with(path: str, value: int) -> dict:
    """A valid config with `value` at `path`, the records on the way filled minimally."""
    config = default_spec()
    node, cls = config, model.Spec
    parts = [p for p in path.replace("[0]", "").split(".") if p != "k"]  # wraps: the types'
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        field = next(f for f in cls._schema() if f[1] == part)
        t = field[2]
        wraps = []
        while t.kind in ("list", "dict"):
            wraps.append(t.kind)
            t = t.item
        if last:
            leaf: object = value
        else:
            existing = node.get(part)
            leaf = None if wraps else existing
            if not isinstance(leaf, dict):
                leaf = _minimal(t.record)
        holder = leaf
        for kind in reversed(wraps):
            holder = [holder] if kind == "list" else {"k": holder}
        node[part] = holder
        if not last:
            node, cls = leaf, t.record
    return config


def _cases() -> Iterator[object]:
    for path, t, _cls, _attr in FIELDS:
        low, high = t.bounds[1], t.bounds[2]
        for value in (low - 1, high + 1):
            yield pytest.param(path, value, id=f"{path}={value}")


@pytest.mark.parametrize(("path", "value"), list(_cases()))
def test_out_of_range_is_refused_with_its_path(path: str, value: int) -> None:
    with pytest.raises(Failure) as info:
        parse_config(json.dumps(_config_with(path, value)))
    message = str(info.value)
    assert message.startswith(f"config.json: {path}: "), message
    assert "out of range" in message or "must be between" in message, message


@pytest.mark.parametrize(("path", "t"), [(p, t) for p, t, _c, _a in FIELDS],
                         ids=[p for p, *_ in FIELDS])
def test_the_ends_of_the_range_are_accepted(path: str, t) -> None:  # noqa: ANN001
    for value in (t.bounds[1], t.bounds[2]):
        try:
            parse_config(json.dumps(_config_with(path, value)))
        except Failure as e:  # a rule relating fields may refuse it, never the range
            assert not str(e).startswith(f"config.json: {path}: "), e


@pytest.mark.parametrize(("path", "value", "message"), [
    ("process.user.additionalGids[0]", -5, "-5 is out of range for uint32 (0..4294967295)"),
    ("process.rlimits[0].hard", 2**70, f"{2**70} is out of range for uint64"),
    ("linux.devices[0].major", 2**32, "4294967296 is out of range for uint32"),
    ("process.user.umask", 0o1000, "must be between 0 and 0777"),
    ("process.oomScoreAdj", -1001, "must be between -1000 and 1000"),
    ("process.user.uid", 2**32 - 1, "must be between 0 and 4294967294"),
    ("linux.resources.pids.limit", 2**63,
     f"{2**63} is out of range for int64 ({-2**63}..{2**63 - 1})"),
    ("linux.resources.blockIO.weight", 65536, "65536 is out of range for uint16 (0..65535)"),
])
def test_cli_says_one_line_and_makes_nothing(tmp_path: Path, path: str, value: int,
                                             message: str) -> None:
    """The CLI's own error, from a non-root user's view: create fails before the state
    directory (or anything else) exists, so it needs no privilege to be refused."""
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(_config_with(path, value)))
    root = tmp_path / "root"
    res = subprocess.run([sys.executable, "-m", "pyruntime", "--root", str(root), "create",
                          "--bundle", str(bundle), "c1"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pyruntime: config.json: {path}: {message}")
    assert not (root / "c1").exists()
    assert not root.exists() or os.listdir(root) == []
