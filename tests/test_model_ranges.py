"""Every integer of the model has a width and a range, and the decoder refuses a value
outside it with the JSON path, before anything is made; no root needed.

The cases are generated from the model itself (spec/model.py), so a field added there is
covered here without touching this file (a plain `int` there is refused by record.py).
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
from pyruntime.spec.load import parse_config
from support.model_fields import FIELDS, config_with


def _cases() -> Iterator[object]:
    for path, t, _cls, _attr in FIELDS:
        low, high = t.bounds[1], t.bounds[2]
        for value in (low - 1, high + 1):
            yield pytest.param(path, value, id=f"{path}={value}")


@pytest.mark.parametrize(("path", "value"), list(_cases()))
def test_out_of_range_is_refused_with_its_path(path: str, value: int) -> None:
    with pytest.raises(Failure) as info:
        parse_config(json.dumps(config_with(path, value)))
    message = str(info.value)
    assert message.startswith(f"config.json: {path}: "), message
    assert "out of range" in message or "must be between" in message, message


@pytest.mark.parametrize(("path", "t"), [(p, t) for p, t, _c, _a in FIELDS],
                         ids=[p for p, *_ in FIELDS])
def test_the_ends_of_the_range_are_accepted(path: str, t) -> None:
    for value in (t.bounds[1], t.bounds[2]):
        try:
            parse_config(json.dumps(config_with(path, value)))
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
    (bundle / "config.json").write_text(json.dumps(config_with(path, value)))
    root = tmp_path / "root"
    res = subprocess.run([sys.executable, "-m", "pyruntime", "--root", str(root), "create",
                          "--bundle", str(bundle), "c1"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pyruntime: config.json: {path}: {message}")
    assert not (root / "c1").exists()
    assert not root.exists() or os.listdir(root) == []


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("user", "4294967295", "--user 4294967295: must be between 0 and 4294967294"),
    ("user", "0:-1", "--user 0:-1: must be between 0 and 4294967294"),
    ("additional_gids", ["1", str(2**32)],
     "--additional-gids[1]: 4294967296 is out of range for uint32 (0..4294967295)"),
])
def test_exec_flags_are_held_to_the_model(flag: str, value: object, message: str) -> None:
    """exec's flags build the process without JSON: the same ranges apply to them."""
    from pyruntime.exec_process import process_from_flags
    from pyruntime.spec.model import Process

    values = {"command": ["true"], "cwd": "", "env": [], "tty": False, "no_new_privs": False,
              "apparmor": "", "user": "", "additional_gids": [], "cap": [], flag: value}
    with pytest.raises(Failure) as info:
        process_from_flags(Process(cwd="/", args=["sh"]), values)
    assert str(info.value) == message


@pytest.mark.parametrize("verb", ["create", "run", "exec"])
def test_an_int_flag_is_held_to_its_c_field(tmp_path: Path, verb: str) -> None:
    """--preserve-fds ends up in struct pyrt_plan's int32: a larger number is a usage error,
    not an OverflowError after the state directory exists."""
    root = tmp_path / "root"
    where = ["c1", "true"] if verb == "exec" else ["--bundle", str(tmp_path), "c1"]
    res = subprocess.run([sys.executable, "-m", "pyruntime", "--root", str(root), verb,
                          "--preserve-fds", str(2**31), *where], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "--preserve-fds" in lines[0] and "2147483648" in lines[0], lines
    assert not root.exists() or os.listdir(root) == []
