"""The `pyruntime` command written by pyruntime.cli.launcher (python -I -S, explicit sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyruntime.cli import launcher


def test_launcher_runs_the_cli_without_site(tmp_path: Path) -> None:
    dest = tmp_path / "pyruntime"
    launcher.write(str(dest))
    text = dest.read_text()
    assert text.startswith(f"#!{sys.executable} -IS\n")
    out = subprocess.run([str(dest), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("pyruntime version ")
    probe = subprocess.run([str(dest), "--root", str(tmp_path / "root"), "state", "nope"],
                           capture_output=True, text=True)
    assert probe.returncode == 1
    assert "container nope does not exist" in probe.stderr


def test_launcher_refuses_an_interpreter_path_the_kernel_cannot_run() -> None:
    with pytest.raises(ValueError):
        launcher.render("/opt/my python/bin/python", "/src", [])
