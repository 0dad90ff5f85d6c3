"""A small declarative decoder: classes annotated with JSON types, decoded with paths in errors.

Why not msgspec or dataclasses: both cost tens of milliseconds to import, and `create` is
on the hot path. Here a model class is written like a dataclass:

    class User(Record):
        uid: u32
        gid: u32
        umask: u32 | None = None
        additional_gids: list[u32] = []

and the annotation strings (never evaluated) are parsed once into decoders. JSON keys are
the attribute names in camelCase unless `_json_names` says otherwise. Attributes without a
default are required. Unknown keys are ignored, as the runtime-spec asks. `u16`, `u32`,
`u64`, `i32` and `i64` are integers checked against that C type's range; `i32[-1000, 1000]`
narrows one field to the range its meaning allows (both ends included; `u32[0, 0o777, oct]`
shows the ends in octal as C writes them, 0777, in the error). Plain `int` is not
allowed: every integer that reaches the kernel has a width (tests/test_model_ranges.py).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are never evaluated; importing typing costs ~2 ms
    from typing import Any

__all__ = ["DecodeError", "Record", "check_field", "decode"]

_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "bool": (bool,),
    "float": (int, float),
    "Any": (object,),
}
# Integers sized as the runtime-spec's Go types (and the C fields they end up in): a
# value outside the range is refused here, with its JSON path, before anything is made.
_SIZED_INTS: dict[str, tuple[str, int, int]] = {
    "u16": ("uint16", 0, 2**16 - 1),
    "u32": ("uint32", 0, 2**32 - 1),
    "u64": ("uint64", 0, 2**64 - 1),
    "i32": ("int32", -(2**31), 2**31 - 1),
    "i64": ("int64", -(2**63), 2**63 - 1),
}
_KIND_WORDS = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    float: "a number",
    object: "a value",
}


class DecodeError(ValueError):
    """A value of the wrong shape, with the JSON path to it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Type:
    """A parsed annotation: primitive, list, dict, optional or record."""

    __slots__ = ("bounds", "item", "kind", "optional", "record", "words")

    def __init__(self, kind: str, item: _Type | None = None, record: Any = None) -> None:
        self.kind = kind
        self.item = item
        self.record = record
        self.optional = False
        self.words = ""
        # sized ints: (C name, min, max), or ("", min, max, min as written, max as written)
        self.bounds: tuple | None = None


def _parse(text: str, namespace: dict[str, Any]) -> _Type:
    text = text.strip()
    parts = _split_top(text, "|")
    if len(parts) > 1:
        non_none = [p for p in parts if p.strip() != "None"]
        if len(non_none) != 1:
            raise TypeError(f"unsupported annotation {text!r}")
        t = _parse(non_none[0], namespace)
        t.optional = True
        return t
    if text.startswith("list[") and text.endswith("]"):
        item = _parse(text[5:-1], namespace)
        t = _Type("list", item)
        t.words = f"a list of {_plural(item)}"
        return t
    if text.startswith("dict[") and text.endswith("]"):
        key, value = _split_top(text[5:-1], ",")
        if key.strip() != "str":
            raise TypeError(f"dict keys must be str in {text!r}")
        item = _parse(value, namespace)
        t = _Type("dict", item)
        t.words = f"an object of {_plural(item)}"
        return t
    if text in _SIZED_INTS or text.partition("[")[0] in _SIZED_INTS and text.endswith("]"):
        return _sized(text)
    if text in _PRIMITIVES:
        t = _Type(text)
        t.words = _KIND_WORDS[_PRIMITIVES[text][-1]]
        return t
    if text in namespace:
        t = _Type("record", record=namespace[text])
        t.words = "an object"
        return t
    raise TypeError(f"unknown type {text!r}")


def _sized(text: str) -> _Type:
    """`u32` (the C type's range) or `u32[0, 99]` (a narrower one, within the C type's)."""
    name, _, narrow = text.partition("[")
    t = _Type("int")
    t.words = "an integer"
    t.bounds = _SIZED_INTS[name]
    if narrow:
        low_text, high_text, *style = (w.strip() for w in _split_top(narrow[:-1], ","))
        low, high = int(low_text), int(high_text)
        if not t.bounds[1] <= low <= high <= t.bounds[2]:
            raise TypeError(f"range of {text!r} is outside {name}")
        # `oct`: a mode, shown as C writes it (0777); the compiler has made 0o777 511 here
        shown = [f"0{v:o}" if v and style == ["oct"] else str(v) for v in (low, high)]
        t.bounds = ("", low, high, *shown)
    return t


def _plural(t: _Type) -> str:
    words = {"str": "strings", "int": "integers", "bool": "booleans", "float": "numbers"}
    if t.kind in words:
        return words[t.kind]
    if t.kind == "record":
        return "objects"
    return t.words.removeprefix("a ").removeprefix("an ") + "s"


def _split_top(text: str, sep: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


class Record:
    """Base of every model class; see the module docstring."""

    _json_names: dict[str, str] = {}
    _fields: tuple[tuple[str, str, _Type, bool, Any], ...] | None = None

    def __init__(self, **values: Any) -> None:
        for attr, _key, _t, _required, default in self._schema():
            value = values.get(attr, default)
            setattr(self, attr, _copy(value))

    def __repr__(self) -> str:
        inner = ", ".join(f"{a}={getattr(self, a)!r}" for a, *_ in self._schema())
        return f"{type(self).__name__}({inner})"

    @classmethod
    def _schema(cls) -> tuple[tuple[str, str, _Type, bool, Any], ...]:
        if cls.__dict__.get("_fields") is None:
            import sys

            namespace = vars(sys.modules[cls.__module__])
            fields = []
            for klass in reversed(cls.__mro__):
                for attr, annotation in klass.__dict__.get("__annotations__", {}).items():
                    if attr.startswith("_"):
                        continue
                    t = _parse(annotation, namespace)
                    required = not hasattr(cls, attr)
                    default = getattr(cls, attr, None)
                    key = cls._json_names.get(attr) or _camel(attr)
                    fields.append((attr, key, t, required, default))
            cls._fields = tuple(fields)
        return cls._fields  # type: ignore[return-value]


def _decode(t: _Type, value: Any, path: str) -> Any:
    if value is None:
        if t.optional:
            return None
        raise DecodeError(path, f"expected {t.words}, got null")
    kind = t.kind
    if kind == "record":
        return decode(t.record, value, path)
    if kind == "list":
        if not isinstance(value, list):
            raise DecodeError(path, f"expected {t.words}, got {_describe(value)}")
        item = t.item
        assert item is not None
        if (item.kind in ("str", "int", "bool") and all(_is(item.kind, v) for v in value)
                and (item.bounds is None or not value
                     or item.bounds[1] <= min(value) and max(value) <= item.bounds[2])):
            return value
        return [_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "dict":
        if not isinstance(value, dict):
            raise DecodeError(path, f"expected {t.words}, got {_describe(value)}")
        item = t.item
        assert item is not None
        return {k: _decode(item, v, f"{path}.{k}") for k, v in value.items()}
    if _is(kind, value):
        if t.bounds is not None and not t.bounds[1] <= value <= t.bounds[2]:
            raise DecodeError(path, _out_of_range(value, t.bounds))
        return value
    raise DecodeError(path, f"expected {t.words}, got {_describe(value)}")


def _out_of_range(value: int, bounds: tuple) -> str:
    if bounds[0]:
        name, low, high = bounds
        return f"{value} is out of range for {name} ({low}..{high})"
    return f"must be between {bounds[3]} and {bounds[4]}"


def _is(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _PRIMITIVES[kind])


def decode(cls: type[Record], value: Any, path: str) -> Any:
    """Decode a JSON value (already parsed) into `cls`, naming `path` in any error."""
    if not isinstance(value, dict):
        raise DecodeError(path, f"expected an object, got {_describe(value)}")
    obj = cls.__new__(cls)
    for attr, key, t, required, default in cls._schema():
        sub = f"{path}.{key}" if path else key
        if key in value:
            setattr(obj, attr, _decode(t, value[key], sub))
        elif required:
            raise DecodeError(sub, "required field is missing")
        else:
            setattr(obj, attr, _copy(default))
    return obj


def check_field(cls: type[Record], attr: str, value: Any, name: str) -> Any:
    """`value` for `cls.attr` from somewhere other than JSON (a flag called `name`), checked
    as the decoder checks it; raise Failure naming the flag."""
    for field, _key, t, _required, _default in cls._schema():
        if field == attr:
            try:
                return _decode(t, value, name)
            except DecodeError as e:
                from pyruntime.errors import Failure

                raise Failure(str(e)) from None
    raise KeyError(attr)


def _copy(value: Any) -> Any:
    """Defaults such as [] and {} are shared by the class; hand out copies."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
