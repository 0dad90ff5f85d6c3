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
_layouts: dict[str, list[tuple[str, int, str, str | None]]] = {}


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
    cached = _layouts.get(struct)
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
    _layouts[struct] = out
    return out


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

    def fill(self, c, struct: str, src) -> None:
        fields = layout(self.ffi, struct)
        positional = isinstance(src, tuple)
        if positional and len(src) != len(fields):
            raise TypeError(f"struct {struct}: {len(src)} items for {len(fields)} fields")
        trace = self.trace
        for i, (name, kind, item, count) in enumerate(fields):
            key = f"{struct}.{name}"
            if key in LEFT_DEFAULT:
                continue
            conv = CONVERT.get(key)
            if conv is not None:
                value = conv[1](src)
                read = conv[0]
            elif positional:
                value, read = src[i], ()
            elif hasattr(src, name):
                value, read = getattr(src, name), (name,)
            elif name.startswith("set_") and hasattr(src, name[4:]):
                value, read = getattr(src, name[4:]) is not None, (name[4:],)
            else:
                raise TypeError(f"struct {struct}.{name}: {type(src).__name__} has no "
                                f"attribute {name!r} (pyruntime/cplan.py)")
            if trace is not None:
                trace.setdefault("filled", set()).add(key)
                if count:
                    trace["filled"].add(f"{struct}.{count}")
                trace.setdefault("read", set()).update(
                    (type(src).__name__, a) for a in read)
            if kind == _INT:
                setattr(c, name, 0 if value is None else int(value))
            elif kind == _STR:
                setattr(c, name, self.string(value))
            elif kind == _STRV:
                arr = self.new("char *[]", [self.string(v) for v in value] + [self.ffi.NULL])
                self.keep.append(arr)
                setattr(c, name, arr)
                if count:
                    setattr(c, count, len(value))
            elif kind == _ARRAY:
                if value is not None:
                    setattr(c, name, value)
            elif not value:
                pass  # NULL, 0
            else:
                if kind == _STRUCTS:
                    arr = self.new(f"{item}[]", len(value))
                    sub = item[len("struct "):]
                    for j, v in enumerate(value):
                        self.fill(arr[j], sub, v)
                else:
                    arr = self.new(f"{item}[]", value)
                self.keep.append(arr)
                setattr(c, name, arr)
                if count:
                    setattr(c, count, len(value))


def to_c(ffi, new, plan, keep: list, trace: dict | None = None):
    """A struct pyrt_plan * filled from `plan`; everything it points to is allocated with
    `new` and appended to `keep` (alive as long as the struct is used).  LEFT_DEFAULT
    fields are the caller's."""
    p = new("struct pyrt_plan *")
    keep.append(p)
    _Filler(ffi, new, keep, trace).fill(p, "pyrt_plan", plan)
    return p
