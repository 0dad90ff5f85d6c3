"""pyruntime.jsonio (JSON without importing json) agrees with the json package."""

from __future__ import annotations

import json

import pytest

from pyruntime import jsonio

VALUES = [
    {}, [], "", 0, -7, 2**70, 1.5, -0.0, 1e300, True, False, None,
    {"ociVersion": "1.2.0", "id": "c1", "pid": 42, "status": "created", "bundle": "/b",
     "annotations": {}, "nested": {"a": [1, 2, {"b": None}], "e": [], "u": "\u00e9\u2603\n\t\"\\"}},
    [[], {}, [[]], {"x": {}}],
    {3: "int key", 2.5: "float key", True: "bool key", None: "none key"},
    ("tuple", 1),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("indent", [None, 2, 4])
def test_dumps_matches_json(value: object, indent: int | None) -> None:
    separators = (",", ":") if indent is None else None
    assert jsonio.dumps(value, indent=indent) == json.dumps(value, indent=indent,
                                                             separators=separators)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_loads_round_trips(value: object) -> None:
    text = json.dumps(value, indent=1)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text.encode())


def test_loads_accepts_what_json_accepts() -> None:
    for text in ('  {"a": 1}\n', "\ufeff[1]".encode(), "NaN", "-Infinity", '"x"', "1e5"):
        expected = json.loads(text)
        got = jsonio.loads(text)
        assert repr(got) == repr(expected)


@pytest.mark.parametrize("text", ["", " ", "{", '{"a": }', "[1,]", '{"a": 1} x', "tru",
                                  '"\x01"', "[1] [2]", "\ufeff{}"])
def test_loads_fails_as_json_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsonio.loads(text)
    assert str(got.value) == str(expected.value)


def test_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})


def test_loads_errors_without_json_imported() -> None:
    """On the hot path json.decoder is not imported; the C scanner then fails to raise
    its JSONDecodeError (a SystemError); loads must still raise json's ValueError."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(jsonio.__file__).parents[1])!r})\n"
        "from pyruntime import jsonio\n"
        "assert 'json.decoder' not in sys.modules\n"
        "for text in ['{\"a\" 1}', '{\"a\": 1', '[1, 2', '[' * 100000 + ']' * 100000,\n"
        "             '{\"a\": ' * 5000]:\n"
        "    try:\n"
        "        jsonio.loads(text)\n"
        "    except ValueError as e:\n"
        "        print(type(e).__name__, str(e)[:40])\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5, out
    assert lines[0].startswith("JSONDecodeError Expecting ':'"), lines
    assert lines[3] == lines[4] == "ValueError nested deeper than 1000 levels", lines
