"""The lean parser (hot path) and the click app are built from one table: prove they agree."""

from __future__ import annotations

import pytest

from pyruntime.cli import lean
from pyruntime.cli.app import parse_with_click
from pyruntime.cli.table import VERBS

# argv as containerd, podman and people send them (docs/contract.md)
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
    # checkpoint/restore as podman and containerd send them
    ["--criu", "/usr/sbin/criu", "checkpoint", "--image-path", "/i", "--work-path", "/w",
     "--leave-running", "--tcp-established", "--manage-cgroups-mode", "soft", "c"],
    ["checkpoint", "--pre-dump", "--parent-path", "../p", "--empty-ns", "network", "c"],
    ["restore", "--image-path", "/i", "--bundle", "/b", "-d", "--pid-file", "/p",
     "--console-socket", "/s", "--no-pivot", "--no-subreaper", "--file-locks", "c"],
    # images: two-word verbs, and run --image (the trailing args keep a "--" after the id:
    # both parsers leave it, the run verb drops one leading "--")
    ["--root", "/r", "image", "load", "oci:/tmp/lay:v1"],
    ["image", "load", "--name", "x", "oci-archive:/tmp/a.tar:v1"],
    ["image", "ls"],
    ["image", "ls", "-q"],
    ["image", "ls", "--format", "json"],
    ["image", "inspect", "img"],
    ["image", "inspect", "--format", "json", "img"],
    ["image", "inspect", "-f", "json", "img"],
    ["image", "bundle", "img", "/b"],
    ["image", "bundle", "--mount", "img", "/b", "--", "sh", "-c", "echo hi"],
    ["image", "unbundle", "/b"],
    ["image", "rm", "img"],
    ["image", "prune"],
    ["--image-root", "/var/x", "image", "ls"],
    ["image", "pull", "--tls-verify=false", "docker://127.0.0.1:5000/x:v1"],
    ["image", "pull", "--creds", "u:p", "--tls-verify", "true", "docker://h.example/x"],
    ["image", "push", "--authfile", "/a.json", "img", "docker://h.example/x:v2"],
    ["image", "push", "h.example/x:v2"],
    ["image", "load", "docker-archive:/t.tar:name:tag"],
    ["--root", "/r", "--image-root=/i", "run", "--image", "img", "c1"],
    ["run", "--image", "img", "--rm", "c1", "--", "cat", "/etc/f"],
    ["run", "--image", "img", "c1"],
    ["run", "--image=img", "-d", "c1", "sh", "-c", "x"],
    ["run", "--image", "img", "c1", "ls", "-l", "--rm"],
    ["run", "--image", "img", "--", "c1", "true"],
    ["run", "--image", "img", "c1", "--", "--", "x"],
]

DECLINED = [
    [], ["--help"], ["state", "--help"], ["--version"], ["nosuchverb"], ["state"],
    ["state", "a", "b"], ["--log-format", "yaml", "state", "x"], ["kill", "--nope", "x"],
    ["create", "--preserve-fds", "x", "c"], ["--root"],
    ["image"], ["image", "--help"], ["image", "load", "--help"], ["image", "nope"],
    ["image", "load"], ["image", "inspect"], ["image", "inspect", "--format", "yaml", "x"],
    ["image", "ls", "extra"], ["image", "bundle", "img"], ["run", "--image"],
    ["image", "rm", "--nope", "x"], ["image", "inspect", "-f=json", "img"],
    ["list", "-f=json"],
    ["image", "pull"], ["image", "pull", "--tls-verify=maybe", "docker://h/x"],
    ["image", "push"], ["image", "push", "a", "b", "c"], ["--image-root"],
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


def test_image_group_help_lists_its_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_with_click(["image", "--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("load", "ls", "inspect", "bundle", "unbundle", "rm", "prune"):
        assert f"  {verb} " in out


def test_run_args_keep_the_double_dash() -> None:
    parsed = lean.parse(["run", "--image", "img", "--rm", "c1", "--", "cat", "/etc/f"])
    assert parsed is not None
    assert parsed.values["args"] == ["--", "cat", "/etc/f"]
    assert parsed.values["image"] == "img" and parsed.values["rm"] is True


def test_single_dash_long_options_as_go_reads_them() -> None:
    """containerd's go-runc sends `restore ... -no-subreaper`; Go's flag package reads
    "-name" as "--name". Only before the positionals: a container's argv is untouched."""
    from pyruntime.cli import lean

    parsed = lean.parse(["restore", "--detach", "-no-subreaper", "-pid-file=/p", "c"])
    assert parsed is not None
    assert parsed.values["no_subreaper"] and parsed.values["pid_file"] == "/p"
    parsed = lean.parse(["exec", "c", "ls", "-all"])
    assert parsed is not None and parsed.values["command"] == ["ls", "-all"]
