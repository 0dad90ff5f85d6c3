"""The namespace kinds are listed once (pyruntime/plan/linux_consts.py NAMESPACES, and
native/namespaces.c for C): every user of the list knows every kind the kernel has.
Checked without root; tests/test_namespaces.py and tests/test_served.py check the same
through real containers (exec joins each kind; a caller in another one is not served)."""

from __future__ import annotations

import os

from pyruntime._native import ffi, lib
from pyruntime.plan.linux_consts import NAMESPACE_FILES, NAMESPACES
from pyruntime.served.admission import profile
from pyruntime.spec.validate import NAMESPACE_TYPES
from pyruntime.verbs.features import features


def test_the_kernel_has_no_namespace_kind_the_list_lacks() -> None:
    kernel = {n for n in os.listdir("/proc/self/ns") if not n.endswith("_for_children")}
    assert kernel <= set(NAMESPACE_FILES.values())


def test_c_names_the_same_kinds() -> None:
    for _kind, file, flag in NAMESPACES:
        assert ffi.string(lib.pyrt_ns_file(flag)).decode() == file
    flags = {flag for _, _, flag in NAMESPACES}
    extra = [hex(1 << b) for b in range(31)
             if (1 << b) not in flags and lib.pyrt_ns_file(1 << b) != ffi.NULL]
    assert extra == [], "native/namespaces.c knows kinds linux_consts.NAMESPACES lacks"


def test_the_user_namespace_is_joined_first() -> None:
    assert NAMESPACES[0][0] == "user"


def test_every_user_of_the_list_knows_every_kind() -> None:
    kinds = [kind for kind, _, _ in NAMESPACES]
    assert sorted(NAMESPACE_TYPES) == sorted(kinds)  # config.json validation
    assert features()["linux"]["namespaces"] == sorted(kinds)
    served = {key[3:] for key in profile("/proc/self") if key.startswith("ns/")}
    # who a server may act for: every kind, and the namespaces the caller's children get
    assert served == {*NAMESPACE_FILES.values(), "pid_for_children", "time_for_children"}
