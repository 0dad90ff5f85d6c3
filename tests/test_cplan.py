"""Plan -> struct pyrt_plan (pyruntime/cplan.py) is complete both ways, checked without root.

Every field of every struct reachable from struct pyrt_plan (cffi's view of native/api.h)
is filled from the plan or listed in cplan.LEFT_DEFAULT, and every attribute of the plan
and of its items fills a field or is marked PYTHON_ONLY.  The plan is built from the
default (busybox) config with every list made non-empty, so each sub-struct is filled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cffi import FFI

from pyruntime import cplan
from pyruntime._native import ffi
from pyruntime.plan.build import build_plan
from pyruntime.spec.default import default_spec
from pyruntime.spec.load import parse_config

API_H = Path(__file__).resolve().parent.parent / "native" / "api.h"


def _plan(tmp_path: Path):
    (tmp_path / "rootfs").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    s = default_spec()
    s["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(tmp_path / "src"),
                        "options": ["rbind"]})
    s["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 1, "hard": 2})
    s["process"]["user"]["additionalGids"] = [5, 6]
    s["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    s["linux"]["namespaces"].append({"type": "cgroup", "path": "/proc/self/ns/cgroup"})
    s["hooks"] = {"startContainer": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"]}]}
    plan = build_plan(parse_config(json.dumps(s)), str(tmp_path), str(tmp_path / "fifo"))
    plan.seccomp_bpf = bytes(8)  # set by the verb (pyruntime/seccomp)
    plan.seccomp_state = ["{", "}"]
    plan.cgroup_procs = ["/sys/fs/cgroup/pids/x/tasks"]  # set by container.create
    return plan


def _structs(ffi_: FFI, name: str = "pyrt_plan", seen: dict | None = None) -> dict:
    """Each struct reachable from `name` -> its field names."""
    seen = {} if seen is None else seen
    t = ffi_.typeof(f"struct {name}")
    seen[name] = [f for f, _ in t.fields]
    for _, f in t.fields:
        item = f.type.item if f.type.kind in ("pointer", "array") else f.type
        if item.kind == "struct":
            sub = item.cname[len("struct "):]
            if sub not in seen:
                _structs(ffi_, sub, seen)
    return seen


def unfilled(ffi_: FFI, trace: dict) -> list[str]:
    """struct.field of each field neither filled nor left default on purpose."""
    return [f"struct {s}.{f}" for s, fields in _structs(ffi_).items() for f in fields
            if f"{s}.{f}" not in trace["filled"] and f"{s}.{f}" not in cplan.LEFT_DEFAULT]


def unread(objects: list, trace: dict) -> list[str]:
    """Class.attribute of each attribute that fills nothing and is not PYTHON_ONLY."""
    out = []
    for obj in objects:
        cls = type(obj)
        attrs = set(vars(obj)) if hasattr(obj, "__dict__") else set(cls.__slots__)
        for a in sorted(attrs - set(getattr(cls, "PYTHON_ONLY", ()))):
            if (cls.__name__, a) not in trace["read"]:
                out.append(f"{cls.__name__}.{a}")
    return out


def _fill(plan, ffi_: FFI = ffi) -> dict:
    trace: dict = {}
    keep: list = []
    cplan.to_c(ffi_, ffi_.new, plan, keep, trace)
    return trace


def test_every_field_is_filled_or_left_default(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    for name in ("joins", "mounts", "devices", "symlinks", "rlimits", "start_hooks", "sysctls",
                 "groups", "masked_paths", "cgroup_procs", "seccomp_state"):
        assert getattr(plan, name), f"the test plan's {name} is empty: its struct is not filled"
    assert unfilled(ffi, _fill(plan)) == []


def test_every_plan_attribute_fills_a_field(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    trace = _fill(plan)
    assert unread([plan, plan.mounts[0], plan.devices[0]], trace) == []
    for obj in (plan, plan.mounts[0]):  # PYTHON_ONLY holds nothing that C gets
        cls = type(obj)
        assert [a for a in cls.PYTHON_ONLY if (cls.__name__, a) in trace["read"]] == []


def test_a_new_plan_attribute_without_a_c_field_fails(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    plan.brand_new = 1
    assert unread([plan], _fill(plan)) == ["Plan.brand_new"]


def test_a_new_c_field_without_a_plan_attribute_fails(tmp_path: Path) -> None:
    """api.h with one more field: filling names it (nothing zeroes it silently)."""
    text = API_H.read_text().replace("    size_t n_seccomp_state;\n",
                                     "    size_t n_seccomp_state;\n    int32_t brand_new;\n")
    other = FFI()
    other.cdef(text)
    with pytest.raises(TypeError, match=r"struct pyrt_plan\.brand_new: Plan has no attr"):
        _fill(_plan(tmp_path), other)
    trace = _fill(_plan(tmp_path / "again"))
    trace["filled"].discard("pyrt_mount.tmpcopyup")
    assert unfilled(ffi, trace) == ["struct pyrt_mount.tmpcopyup"]


def test_the_struct_holds_the_plan(tmp_path: Path) -> None:
    """What C reads back: strings, vectors with their counts, sub-structs, conversions."""
    plan = _plan(tmp_path)
    plan.console_size = (24, 80)
    plan.scheduler = (0, 3, 0, 0, 0, 0, 0)
    keep: list = []
    p = cplan.to_c(ffi, ffi.new, plan, keep)
    assert ffi.string(p.rootfs).decode() == plan.rootfs
    assert [ffi.string(p.argv[i]).decode() for i in range(len(plan.argv))] == plan.argv
    assert p.argv[len(plan.argv)] == ffi.NULL
    assert p.n_masked == len(plan.masked_paths) and p.n_mounts == len(plan.mounts)
    bind = p.mounts[len(plan.mounts) - 1]
    assert ffi.string(bind.destination) == b"/mnt" and bind.dest_kind == 0
    assert bind.idmap_tree_fd == -1
    assert (p.n_joins, p.joins[0].path) and ffi.string(p.joins[0].path) == b"/proc/self/ns/cgroup"
    assert list(p.groups[0:2]) == [5, 6] and p.n_groups == 2
    assert p.cap_bounding == plan.caps["bounding"] and p.set_caps == 1
    assert (p.console_rows, p.console_cols) == (24, 80)
    assert (p.set_scheduler, p.sched_nice) == (1, 3)
    assert (p.set_mempolicy, p.mempolicy_maxnode, p.set_oom_score_adj) == (0, 0, 0)
    assert p.seccomp_bpf_len == 8 and p.n_seccomp_state == 2
    assert ffi.string(p.start_hooks[0].argv[0]) == b"true" and p.start_hooks[0].argv[1] == ffi.NULL
