"""Plan -> struct pyrt_plan, driven by the struct's own field list (cffi reads native/api.h).

A C field is filled from the attribute of the same name of the Plan (or of a list item:
MountStep, DeviceNode, or a tuple, whose items fill the struct's fields in order).  The
C type decides the conversion:

- an integer: int(value), None -> 0;  `set_X` with no attribute of that name: whether X
  is not None (X None -> 0);
- `char *`: the string, None -> NULL;  `char **`: a NULL-terminated vector;
- `T *`: an array of T, structs filled by these same rules; the size_t field that follows
  a pointer is its count (an empty list: NULL and 0).

So a new field is a Plan attribute and an api.h field of one name.  The few that differ
are in CONVERT (a conversion, with the attributes it reads) or LEFT_DEFAULT (set by
spawn.py, or left zero on purpose); tests/test_cplan.py fails on a field that is in
neither, and on a Plan attribute that fills nothing and is not in its PYTHON_ONLY.
"""

from __future__ import annotations

# "struct.field" -> (attributes read, conversion of the source object)
CONVERT: dict = {
    "pyrt_plan.cgroup_fd_procs": (("cgroup_dir_procs",), lambda p: p.cgroup_dir_procs),
    "pyrt_plan.console_rows": (("console_size",), lambda p: p.console_size[0]),
    "pyrt_plan.console_cols": (("console_size",), lambda p: p.console_size[1]),
    "pyrt_plan.mempolicy_mode": (("mempolicy",), lambda p: p.mempolicy and p.mempolicy[0]),
    # bits + 1, as numactl passes it
    "pyrt_plan.mempolicy_maxnode": (("mempolicy",),
                                    lambda p: 1025 if p.mempolicy and p.mempolicy[1] else 0),
    "pyrt_plan.mempolicy_nodes": (("mempolicy",), lambda p: _node_mask(p.mempolicy)),
    "pyrt_mount.dest_kind": (("is_file",), lambda m: int(m.is_file)),  # PYRT_DEST_FILE: 1
}
for _i, _name in enumerate(("policy", "nice", "priority", "flags", "runtime", "deadline",
                            "period")):
    CONVERT[f"pyrt_plan.sched_{_name}"] = (
        ("scheduler",), lambda p, i=_i: p.scheduler[i] if p.scheduler else 0)
for _name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
    CONVERT[f"pyrt_plan.cap_{_name}"] = (("caps",), lambda p, n=_name: p.caps[n])

# fds spawn.py opens around the clone and sets itself
LEFT_DEFAULT = frozenset({"pyrt_plan.sync_fd", "pyrt_plan.cgroup_fd"})

_INT, _STR, _STRV, _STRUCTS, _VALUES, _ARRAY = range(6)
_layouts: dict[tuple, list[tuple[str, int, str, str | None]]] = {}  # per (ffi, struct)


def _node_mask(mempolicy: tuple[int, list[int]] | None) -> list[int] | None:
    if not mempolicy:
        return None
    words = [0] * 16
    for n in mempolicy[1]:
        words[n // 64] |= 1 << (n % 64)
    return words


def layout(ffi, struct: str) -> list[tuple[str, int, str, str | None]]:
    """(field, kind, item ctype, count field) of each field of `struct pyrt_<...>` that is
    not a count, from cffi's view of native/api.h."""
    cached = _layouts.get((ffi, struct))
    if cached is not None:
        return cached
    fields = ffi.typeof(f"struct {struct}").fields
    out = []
    skip = None
    for j, (name, f) in enumerate(fields):
        if name == skip:
            continue
        t = f.type
        count = None
        if t.kind == "pointer":
            nxt = fields[j + 1] if j + 1 < len(fields) else None
            if nxt is not None and nxt[1].type.cname == "size_t":
                count = skip = nxt[0]
            item = t.item
            if item.cname == "char":
                kind = _STR
            elif item.kind == "pointer" and item.item.cname == "char":
                kind = _STRV
            elif item.kind == "struct":
                kind = _STRUCTS
            else:
                kind = _VALUES
            out.append((name, kind, item.cname, count))
        elif t.kind == "array":
            out.append((name, _ARRAY, t.item.cname, None))
        else:
            out.append((name, _INT, t.cname, None))
    _layouts[ffi, struct] = out
    return out


def _getter(struct: str, name: str, index: int, src):
    """How field `name` (the index-th non-count one) of `struct` is read from objects like
    `src`: (value of src, the attributes it reads), or TypeError naming the field."""
    key = f"{struct}.{name}"
    conv = CONVERT.get(key)
    if conv is not None:
        return conv[1], conv[0]
    if isinstance(src, tuple):
        return (lambda s: s[index]), ()
    if hasattr(src, name):
        return (lambda s: getattr(s, name)), (name,)
    if name.startswith("set_") and hasattr(src, name[4:]):
        return (lambda s: getattr(s, name[4:]) is not None), (name[4:],)
    raise TypeError(f"struct {struct}.{name}: {type(src).__name__} has no attribute "
                    f"{name!r} (pyruntime/cplan.py)")


_plans: dict[tuple, list] = {}  # per (ffi, struct, source type)


def _compile(ffi, struct: str, src) -> list:
    """The fill of `struct` from objects of src's type: per field that is not left default,
    (name, kind, item ctype, count field, getter, attributes read, "struct.field")."""
    key = (ffi, struct, type(src))
    ops = _plans.get(key)
    if ops is not None:
        return ops
    fields = layout(ffi, struct)
    ops = []
    for i, (name, kind, item, count) in enumerate(fields):
        if f"{struct}.{name}" in LEFT_DEFAULT:
            continue
        get, read = _getter(struct, name, i, src)
        ops.append((name, kind, item, count, get, read, f"{struct}.{name}"))
    _plans[key] = ops
    return ops


class _Filler:
    """Allocates with `new` (ffi.new or a served worker's arena), keeps every allocation
    in `keep`, and, for tests, records what it filled and read in `trace`."""

    def __init__(self, ffi, new, keep: list, trace: dict | None) -> None:
        self.ffi, self.new, self.keep, self.trace = ffi, new, keep, trace

    def string(self, value: str | None):
        if value is None:
            return self.ffi.NULL
        buf = self.new("char[]", value.encode())
        self.keep.append(buf)
        return buf

    def values(self, struct: str, src) -> dict:
        """The initializer of one `struct` (cffi fills it in C, in one call)."""
        if isinstance(src, tuple):
            n = len(layout(self.ffi, struct))
            if len(src) != n:
                raise TypeError(f"struct {struct}: {len(src)} items for {n} fields")
        trace = self.trace
        out = {}
        for name, kind, item, count, get, read, key in _compile(self.ffi, struct, src):
            value = get(src)
            if trace is not None:
                trace.setdefault("filled", set()).add(key)
                if count:
                    trace["filled"].add(f"{struct}.{count}")
                trace.setdefault("read", set()).update((type(src).__name__, a) for a in read)
            if kind == _INT:
                out[name] = 0 if value is None else int(value)
            elif kind == _STR:
                out[name] = self.string(value)
            elif kind == _STRV:
                arr = self.new("char *[]", [self.string(v) for v in value] + [self.ffi.NULL])
                self.keep.append(arr)
                out[name] = arr
                if count:
                    out[count] = len(value)
            elif kind == _ARRAY:
                if value is not None:
                    out[name] = value
            elif value:  # else NULL, 0
                if kind == _STRUCTS:
                    sub = item[len("struct "):]
                    arr = self.new(f"{item}[]", [self.values(sub, v) for v in value])
                else:
                    arr = self.new(f"{item}[]", value)
                self.keep.append(arr)
                out[name] = arr
                if count:
                    out[count] = len(value)
        return out


def to_c(ffi, new, plan, keep: list, trace: dict | None = None):
    """A struct pyrt_plan * filled from `plan`; everything it points to is allocated with
    `new` and appended to `keep` (alive as long as the struct is used).  LEFT_DEFAULT
    fields are the caller's."""
    p = new("struct pyrt_plan *", _Filler(ffi, new, keep, trace).values("pyrt_plan", plan))
    keep.append(p)
    return p
