"""What the model accepts, the C struct can hold: each integer of the model at its lowest
and at its highest value is either refused by the checks that run before the state
directory is reserved (parse, plan) with a Failure, or goes through the plan into
`struct pyrt_plan` (spawn._to_c, filled but not run) without OverflowError or TypeError.
No root: nothing is spawned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyruntime.errors import Failure
from pyruntime.plan.build import build_plan
from pyruntime.spec.load import parse_config
from support.model_fields import FIELDS, config_with

CASES = [pytest.param(path, end, id=f"{path}={'min' if end == 1 else 'max'}")
         for path, _t, _cls, _attr in FIELDS for end in (1, 2)]
reached: dict[str, int] = {}


def _with_namespaces(config: dict, path: str) -> None:
    """id mappings are planned only with a user namespace (and both maps), time offsets
    only with a time namespace."""
    if path.startswith(("linux.uidMappings", "linux.gidMappings")):
        config["linux"]["namespaces"].append({"type": "user"})
        for key in ("uidMappings", "gidMappings"):
            config["linux"].setdefault(key, [{"containerID": 0, "hostID": 0, "size": 1}])
    if path.startswith("linux.timeOffsets"):
        config["linux"]["namespaces"].append({"type": "time"})


def _fill_struct(plan) -> None:  # plan: plan.build.Plan
    from pyruntime._native import ffi
    from pyruntime.spawn import _to_c

    keep: list = []
    _to_c(ffi, ffi.new, plan, 3, keep)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


@pytest.mark.parametrize(("path", "end"), CASES)
def test_create_plan_holds_every_accepted_value(bundle: Path, path: str, end: int) -> None:
    t = next(t for p, t, _c, _a in FIELDS if p == path)
    config = config_with(path, t.bounds[end])
    _with_namespaces(config, path)
    try:
        spec = parse_config(json.dumps(config))
        plan = build_plan(spec, str(bundle), "/fifo")
    except Failure as e:  # refused before anything is made: fine, but by a rule, in words
        assert str(e).startswith("config.json: "), e
        return
    _fill_struct(plan)
    reached[path] = reached.get(path, 0) + 1


@pytest.mark.parametrize(("path", "end"), [c for c in CASES if c.values[0].startswith(
    "process.")])
def test_exec_plan_holds_every_accepted_value(bundle: Path, path: str, end: int) -> None:
    """The same for exec: a process.json with the value, planned as exec plans it."""
    from pyruntime.exec_process import exec_plan
    from pyruntime.spec.load import decode_json
    from pyruntime.spec.model import Process
    from pyruntime.spec.process_rules import check_process

    t = next(t for p, t, _c, _a in FIELDS if p == path)
    config = config_with(path, t.bounds[end])
    spec = parse_config(json.dumps(config_with("process.user.uid", 0)))
    try:
        process = decode_json(json.dumps(config["process"]), Process, "process.json")
        check_process(process, "process.json: ")
        plan = exec_plan(spec, process, str(bundle / "rootfs"))
    except Failure as e:
        assert str(e).startswith("process.json: "), e
        return
    _fill_struct(plan)


def test_most_fields_reach_the_struct() -> None:
    """The test above is not vacuous: most values are planned and filled in (runs last in
    this file; alone it checks nothing)."""
    if not reached:
        pytest.skip("run with the rest of this file")
    assert len(reached) >= len(FIELDS) // 2, sorted(set(p for p, *_ in FIELDS) - set(reached))
