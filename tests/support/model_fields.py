"""The model's integer fields, found by walking spec/model.py, and configs that hold one
value at one of them (tests/test_model_ranges.py, tests/test_model_extremes.py)."""

from __future__ import annotations

from collections.abc import Iterator

from pyruntime.spec import model
from pyruntime.spec.default import default_spec
from pyruntime.spec.record import Record

_MAP = [{"containerID": 0, "hostID": 0, "size": 1}]
COMPANIONS = {"Mount": {"type": "bind", "source": "/", "options": ["bind", "idmap"],
                        "uidMappings": _MAP, "gidMappings": _MAP},
              "Device": {"major": 1, "minor": 3}, "Rlimit": {"hard": 2**64 - 1}}
DICT_KEY = "monotonic"  # the one key of a dict: a clock name fits linux.timeOffsets


def _int_fields(cls: type[Record], path: str) -> Iterator[tuple[str, object, type[Record], str]]:
    """(JSON path, parsed type, owning record, attribute) of every integer under cls."""
    for attr, key, t, _required, _default in cls._schema():
        sub = f"{path}.{key}" if path else key
        while t.kind in ("list", "dict"):
            sub += "[0]" if t.kind == "list" else f".{DICT_KEY}"
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


# required strings that the rules after the decoder accept, so that the values under test
# get as far as they can (tests/test_model_extremes.py takes them into the C struct)
STRINGS = {("Rlimit", "type"): "RLIMIT_NOFILE", ("IOPriority", "class"): "IOPRIO_CLASS_BE",
           ("Scheduler", "policy"): "SCHED_OTHER", ("Mount", "destination"): "/mnt",
           ("Hook", "path"): "/bin/true", ("Device", "type"): "c", ("Device", "path"): "/dev/x",
           ("Seccomp", "defaultAction"): "SCMP_ACT_ERRNO", ("Syscall", "action"): "SCMP_ACT_ERRNO",
           ("SyscallArg", "op"): "SCMP_CMP_EQ", ("Syscall", "names"): ["read"],
           ("HugepageLimitStr", "pageSize"): "2MB", ("InterfacePriority", "name"): "lo"}


def minimal(cls: type[Record]) -> dict:
    """The smallest object of `cls` the decoder accepts: required fields only."""
    out: dict = {}
    for _attr, key, t, required, _default in cls._schema():
        if required:
            out[key] = STRINGS.get((cls.__name__, key), _value(t))
    out.update(COMPANIONS.get(cls.__name__, {}))
    return out


def _value(t) -> object:  # t: record.py's parsed type
    if t.kind == "record":
        return minimal(t.record)
    if t.kind == "list":
        return []
    if t.kind == "dict":
        return {}
    if t.kind == "int":
        return t.bounds[1]
    return {"str": "x", "bool": False, "float": 0, "Any": None}[t.kind]


def config_with(path: str, value: int) -> dict:
    """A valid config with `value` at `path`, the records on the way filled minimally."""
    config = default_spec()
    node, cls = config, model.Spec
    parts = [p for p in path.replace("[0]", "").split(".") if p != DICT_KEY]  # types: wraps
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
                leaf = minimal(t.record)
        holder = leaf
        for kind in reversed(wraps):
            holder = [holder] if kind == "list" else {DICT_KEY: holder}
        node[part] = holder
        if not last:
            node, cls = leaf, t.record
    return config
