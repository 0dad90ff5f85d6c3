"""The lean parser (hot path) and the click app are built from one table: prove they agree."""

from __future__ import annotations

import pytest

from pyruntime.cli import lean
from pyruntime.cli.app import parse_with_click
from pyruntime.cli.table import VERBS

# argv as containerd, podman and people send them (REFERENCE.md section 1)
AGREEING = [
    ["--root", "/run/containerd/runc/default", "--log", "/b/log.json", "--log-format", "json",
     "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "t1"],
    ["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "create", "--bundle",
     "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/pty1/pty.sock", "t1"],
    ["--log-format=json", "--log=/u/oci-log", "create", "--bundle", "/u", "--pid-file",
     "/rr/pidfile", "abc123"],
    ["--root", "/r", "start", "t1"],
    ["--root", "/r", "state", "t1"],
    ["--root", "/r", "kill", "t4", "9"],
    ["--root", "/r", "kill", "--all", "t4", "KILL"],
    ["kill", "t4"],
    ["--root", "/r", "delete", "t1"],
    ["--root", "/r", "delete", "--force", "t1"],
    ["delete", "-f", "t1"],
    ["run", "-b", "/b", "--detach", "--pid-file", "/p", "c"],
    ["run", "--bundle=/b", "-d", "c"],
    ["create", "--preserve-fds", "2", "--no-pivot", "--no-new-keyring", "c"],
    ["list", "--format", "json"],
    ["list", "-q"],
    ["list"],
    ["spec", "--bundle", "/tmp/b"],
    ["features"],
    ["--debug", "--systemd-cgroup", "state", "x"],
    ["delete", "--", "-odd"],
    ["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "exec", "--process",
     "/tmp/runc-process1", "--detach", "--pid-file", "/b/e1.pid", "t4"],
    ["--log-format=json", "--log=/u/oci-log", "exec", "--process", "/p.json", "--detach",
     "--console-socket", "/tmp/pty2/pty.sock", "--pid-file", "/u/exec.pid", "abc"],
    ["exec", "-t", "--cwd", "/tmp", "-e", "A=1", "--env", "B=2", "-u", "1:2", "--cap",
     "CAP_CHOWN", "c", "sh", "-c", "echo --not-an-option"],
    ["exec", "c", "ls", "-l"],
]

DECLINED = [
    [], ["--help"], ["state", "--help"], ["--version"], ["nosuchverb"], ["state"],
    ["state", "a", "b"], ["--log-format", "yaml", "state", "x"], ["kill", "--nope", "x"],
    ["create", "--preserve-fds", "x", "c"], ["--root"],
]


@pytest.mark.parametrize("argv", AGREEING, ids=" ".join)
def test_lean_and_click_agree(argv: list[str]) -> None:
    parsed = lean.parse(argv)
    assert parsed is not None, "the lean parser must handle what clients send"
    result = parse_with_click(argv)
    assert not isinstance(result, int), result
    g, verb, values = result
    assert parsed.globals == g
    assert parsed.verb is verb
    assert parsed.values == values


@pytest.mark.parametrize("argv", DECLINED, ids=lambda a: " ".join(a) or "(empty)")
def test_lean_declines_what_click_must_explain(argv: list[str]) -> None:
    assert lean.parse(argv) is None


def test_every_verb_handler_imports() -> None:
    for verb in VERBS.values():
        module_name, func = verb.handler.split(":")
        module = __import__(module_name, fromlist=[func])
        assert callable(getattr(module, func))
