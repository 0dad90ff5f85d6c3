"""linux.seccomp -> compile input (pyruntime/seccomp/profile.py): no root, no kernel."""

from __future__ import annotations

import errno

import pytest

from pyruntime.errors import Failure
from pyruntime.seccomp import profile as sp
from pyruntime.spec.model import Seccomp
from pyruntime.spec.record import DecodeError, decode


def build(**doc) -> sp.Profile:
    """Decoded (ranges are the model's) and translated, as load.py and build.py do."""
    doc.setdefault("defaultAction", "SCMP_ACT_ALLOW")
    try:
        seccomp = decode(Seccomp, doc, "linux.seccomp")
    except DecodeError as e:
        raise Failure(f"config.json: {e}") from None
    return sp.build_profile(seccomp)


def args(*conds) -> list[dict]:
    return [{"index": i, "op": op, "value": v} for i, op, v in conds]


def test_actions_and_errno_defaults() -> None:
    p = build(defaultAction="SCMP_ACT_ERRNO", syscalls=[
        {"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
        {"names": ["b"], "action": "SCMP_ACT_TRACE"},
        {"names": ["c"], "action": "SCMP_ACT_KILL_PROCESS"},
    ])
    assert p.default_action == sp.ACT_ERRNO | errno.EPERM
    assert [(r.name, r.action) for r in p.rules] == [
        ("a", sp.ACT_ERRNO | errno.EXDEV), ("b", sp.ACT_TRACE | errno.EPERM),
        ("c", sp.ACT_KILL_PROCESS)]


def test_distinct_indexes_and_repeated_indexes() -> None:
    p = build(syscalls=[
        {"names": ["x", "y"], "action": "SCMP_ACT_ERRNO",
         "args": args((0, "SCMP_CMP_EQ", 1), (1, "SCMP_CMP_GT", 2))},
        {"names": ["z"], "action": "SCMP_ACT_ERRNO",
         "args": args((1, "SCMP_CMP_EQ", 1), (1, "SCMP_CMP_EQ", 2), (0, "SCMP_CMP_NE", 3))},
    ])
    anded = [r for r in p.rules if r.name in "xy"]
    assert [len(r.args) for r in anded] == [2, 2]  # one rule per name, conditions AND-ed
    ored = [r.args for r in p.rules if r.name == "z"]
    assert ored == [[(1, 4, 1, 0)], [(1, 4, 2, 0)], [(0, 1, 3, 0)]]  # one rule per condition


def test_rule_equal_to_the_default_is_left_out() -> None:
    p = build(syscalls=[{"names": ["read"], "action": "SCMP_ACT_ALLOW"}])
    assert p.rules == []


@pytest.mark.parametrize("doc,message", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, ".defaultAction: unknown action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, ".defaultErrnoRet: SCMP_ACT_ALLOW"),
    ({"flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, ".flags[0]: unknown flag"),
    ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                    "args": args((6, "SCMP_CMP_EQ", 1))}]}, ".syscalls[0].args[0].index"),
    ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                    "args": args((0, "SCMP_CMP_LIKE", 1))}]}, ".syscalls[0].args[0].op"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "cannot be the default"),
    ({"syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}], "listenerPath": "/x"},
     ".syscalls[0].names[0]: SCMP_ACT_NOTIFY cannot be used for sendmsg"),
    ({"listenerMetadata": "m"}, ".listenerMetadata: must not be set without listenerPath"),
])
def test_refused(doc: dict, message: str) -> None:
    with pytest.raises(Failure) as e:
        build(**doc)
    assert message in str(e.value) and str(e.value).startswith("config.json: linux.seccomp")


def test_notify_flags() -> None:
    p = build(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}], listenerPath="/s",
              flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    assert p.flags == (sp.FLAG_TSYNC | sp.FLAG_TSYNC_ESRCH | sp.FLAG_NEW_LISTENER
                       | sp.FLAG_WAIT_KILLABLE_RECV)
    q = build(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_LOG"])
    assert q.flags == sp.FLAG_LOG and q.dropped_flags


def test_cache_key_follows_the_compile_input() -> None:
    pytest.importorskip("pyruntime._native")
    from pyruntime import seccomp

    a = build(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}])
    b = build(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
              flags=["SECCOMP_FILTER_FLAG_LOG"])  # a load flag: same program
    c = build(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}])
    assert seccomp.cache_key(a) == seccomp.cache_key(b) != seccomp.cache_key(c)


def test_architectures_shape_the_program() -> None:
    pytest.importorskip("pyruntime._native")
    from pyruntime import seccomp

    rules = [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    native, _ = seccomp.compile_bpf(build(syscalls=rules, architectures=["SCMP_ARCH_X86_64"]))
    multi, _ = seccomp.compile_bpf(build(syscalls=rules, architectures=[
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]))
    assert len(native) % 8 == 0 and len(multi) > len(native)
