"""JSON for the hot path, without importing the json package.

`import json` costs ~10 ms here: json.decoder and json.encoder import `re`, which imports
enum, functools and collections; that is a quarter of a `state` call.  The work itself is
done by json's own C accelerator `_json` (its scanner and string encoder), which imports
nothing, so the results are json's: loads() takes what json.loads takes, and dumps()
writes what json.dumps(obj, indent=..., separators=...) writes for the values pyruntime
stores and prints (dict, list, str, int, float, bool, None).  On malformed input loads()
hands the text to json.loads, so errors are json's own, word for word; nesting deeper
than the interpreter's recursion limit (1000) is a ValueError too.
"""

from __future__ import annotations

import _json

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes _json.make_scanner reads (what json.JSONDecoder() has by default)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict = {}


_scan = _json.make_scanner(_Context())
_string = _json.encode_basestring_ascii


def loads(data: bytes | str) -> object:
    """json.loads for UTF-8 text (a BOM allowed in bytes, as json.loads allows it)."""
    if isinstance(data, bytes | bytearray):
        text = data.decode()  # not "utf-8-sig": that codec is one more module to import
        if text.startswith("\ufeff"):
            text = text[1:]
    else:
        text = data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, SystemError, ValueError):
        # The scanner reports most errors by raising json.decoder.JSONDecodeError, which
        # it takes from sys.modules: until json is imported, it returns NULL without an
        # exception (SystemError).  json.loads below imports it and says what is wrong.
        value, end = None, -1
    except RecursionError:
        raise ValueError(f"nested deeper than {_depth_limit()} levels") from None
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json

        try:
            return json.loads(text)  # raises json's own JSONDecodeError
        except RecursionError:
            raise ValueError(f"nested deeper than {_depth_limit()} levels") from None
    return value


def _depth_limit() -> int:
    """The nesting the C scanner allows: one level per interpreter recursion level."""
    import sys

    return sys.getrecursionlimit()


def dumps(value: object, indent: int | None = None) -> str:
    """json.dumps(value, indent=indent) with ensure_ascii, compact (",", ":") separators
    when indent is None, json's (",", ": ") when it is not."""
    out: list[str] = []
    _write(value, out, indent, 0)
    return "".join(out)


def _write(value: object, out: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        open_, sep, close, colon = _layout(indent, depth, "{", "}", ":")
        out.append(open_)
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(sep)
            out.append(_key(key))
            out.append(colon)
            _write(item, out, indent, depth + 1)
        out.append(close)
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        open_, sep, close, _ = _layout(indent, depth, "[", "]", "")
        out.append(open_)
        for i, item in enumerate(value):
            if i:
                out.append(sep)
            _write(item, out, indent, depth + 1)
        out.append(close)
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _layout(indent: int | None, depth: int, open_: str, close: str,
            colon: str) -> tuple[str, str, str, str]:
    if indent is None:
        return open_, ",", close, ":"
    inner = "\n" + " " * (indent * (depth + 1))
    return open_ + inner, "," + inner, "\n" + " " * (indent * depth) + close, ": "


def _key(key: object) -> str:
    if isinstance(key, str):
        return _string(key)
    if isinstance(key, bool) or key is None:  # as json: True -> "true"
        return _string({True: "true", False: "false", None: "null"}[key])
    if isinstance(key, int):
        return _string(int.__repr__(key))
    if isinstance(key, float):
        return _string(_float(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)
