"""The one hook runner (pyruntime/hookrun.py over native/hooks.c), driven directly with
real processes: what the hook gets (argv, env, stdin, cwd) and the error line it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyruntime.errors import Failure
from pyruntime.hookrun import run_hook

REPORT = r"""#!/bin/sh
{ echo "args=$*"; echo "cwd=$(pwd -P)"; echo "var=$VAR"; echo "stdin=$(cat)"; } > "$OUT"
"""


def script(tmp_path: Path, body: str, name: str = "hook.sh") -> str:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def test_what_the_hook_gets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    where = tmp_path / "elsewhere"
    where.mkdir()
    path = script(tmp_path, REPORT)
    hook = {"path": path, "args": ["name0", "a", "b c"], "env": [f"OUT={out}", "VAR=x",
                                                                 "VAR=y"]}
    run_hook(hook, b'{"id":"c"}', "test hook", cwd=str(where))
    assert out.read_text().splitlines() == [
        "args=a b c", f"cwd={where}", "var=y", 'stdin={"id":"c"}']


def test_failure_names_the_hook_and_keeps_its_output_on_one_line(tmp_path: Path) -> None:
    body = "#!/bin/sh\nprintf 'first\\n\\n  second\\t' ; printf '%0300d' 0 >&2; exit 3\n"
    hook = {"path": script(tmp_path, body), "args": []}
    with pytest.raises(Failure) as e:
        run_hook(hook, b"{}", "prestart hook 0 (x)")
    text = str(e.value)
    assert text.startswith("prestart hook 0 (x): exit status 3: first second 000")
    assert "\n" not in text and len(text.split(": ", 2)[2]) == 200


def test_timeout_and_signal(tmp_path: Path) -> None:
    sleeper = {"path": script(tmp_path, "#!/bin/sh\nexec sleep 60\n"), "args": [],
               "timeout": 1}
    with pytest.raises(Failure, match="ran past its timeout of 1s"):
        run_hook(sleeper, b"{}", "h")
    killer = {"path": script(tmp_path, "#!/bin/sh\nkill -9 $$\n", "k.sh"), "args": []}
    with pytest.raises(Failure, match="h: killed by signal 9"):
        run_hook(killer, b"{}", "h")


def test_what_keeps_it_from_running(tmp_path: Path) -> None:
    with pytest.raises(Failure, match=r"^h: no such file or directory$"):
        run_hook({"path": str(tmp_path / "missing"), "args": []}, b"{}", "h")
    ok = {"path": script(tmp_path, "#!/bin/sh\n"), "args": []}
    with pytest.raises(Failure, match=r"^h: cwd: no such file or directory$"):
        run_hook(ok, b"{}", "h", cwd=str(tmp_path / "nowhere"))


def test_a_hook_that_does_not_read_its_stdin(tmp_path: Path) -> None:
    hook = {"path": script(tmp_path, "#!/bin/sh\nexec true\n"), "args": []}
    run_hook(hook, b"x" * (1 << 20), "h")  # more than a pipe holds
