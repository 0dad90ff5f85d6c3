"""CLI checks that run no container (no root needed)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from support import Runtime, stderr_lines

RUNC_TOP_LEVEL_KEYS = {"ociVersion", "process", "root", "hostname", "mounts", "linux"}


def rfc3339(text: str) -> datetime:
    """Parse RFC 3339 (nanoseconds and a trailing Z allowed)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert m, f"not RFC 3339: {text!r}"
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + tz)


def test_spec_writes_runc_like_config(runtime: Runtime, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    result = runtime.run("spec", "--bundle", bundle, check=True)
    assert result.stdout == ""
    config = json.loads((bundle / "config.json").read_text())
    assert RUNC_TOP_LEVEL_KEYS <= set(config)
    assert config["root"]["path"] == "rootfs"
    assert config["process"]["args"] == ["sh"]
    assert re.fullmatch(r"1\.\d+\.\d+.*", config["ociVersion"])
    types = {ns["type"] for ns in config["linux"]["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= types
    assert {m["destination"] for m in config["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/sys"}


def test_spec_defaults_to_cwd(runtime: Runtime, tmp_path: Path) -> None:
    runtime.run("spec", check=True, cwd=tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["process"]["args"] == ["sh"]


def test_features_is_json(runtime: Runtime) -> None:
    result = runtime.run("features", check=True)
    features = json.loads(result.stdout)
    assert re.fullmatch(r"1\.\d+\.\d+.*", features["ociVersionMin"])
    assert re.fullmatch(r"1\.\d+\.\d+.*", features["ociVersionMax"])
    assert "mount" in features["linux"]["namespaces"]


@pytest.mark.pyruntime_only
def test_version(runtime: Runtime) -> None:
    lines = runtime.run("--version", check=True).stdout.splitlines()
    assert lines[0].startswith("pyruntime version ")
    assert any(re.fullmatch(r"spec: 1\.2\.\d+.*", line) for line in lines)


def test_state_of_unknown_id(runtime: Runtime) -> None:
    result = runtime.run("state", "nosuch")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1 and "does not exist" in lines[0], result.stderr


# `delete --force` of an unknown id succeeds, as runc's (tests/test_runc_parity_cli.py)
@pytest.mark.parametrize("verb", [("start",), ("kill",), ("delete",), ("state",)])
def test_verbs_on_unknown_id(runtime: Runtime, verb: tuple[str, ...]) -> None:
    result = runtime.run(*verb, "nosuch")
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1 and "does not exist" in lines[0], result.stderr


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_error_is_logged_as_json(runtime: Runtime, tmp_path: Path, form: str) -> None:
    log = tmp_path / "log.json"
    fmt = ["--log-format", "json"] if form == "separate" else ["--log-format=json"]
    result = runtime.run("--log", log, *fmt, "state", "nosuch")
    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1, result.stderr
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [r for r in records if r.get("level") == "error"]
    assert errors, records
    assert "does not exist" in errors[-1]["msg"]
    rfc3339(errors[-1]["time"])


@pytest.mark.pyruntime_only
@pytest.mark.parametrize("argv", [["no-such-verb", "c1"], ["kill", "--no-such-flag", "c1"]])
def test_usage_error_is_logged_as_json(runtime: Runtime, tmp_path: Path,
                                       argv: list[str]) -> None:
    # containerd reads a failed verb's message from the log ("unable to retrieve OCI
    # runtime error" otherwise), e.g. for a verb this runtime lacks
    log = tmp_path / "log.json"
    result = runtime.run("--debug", "--log", log, "--log-format=json", *argv)
    assert result.returncode != 0
    errors = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["level"] for e in errors] == ["error"]
    assert errors[0]["msg"] in result.stderr


def test_list_empty(runtime: Runtime) -> None:
    assert runtime.run("list", "--quiet", check=True).stdout.strip() == ""
    out = runtime.run("list", "--format", "json", check=True).stdout
    assert json.loads(out) in ([], None)


@pytest.mark.parametrize("cid", ["../x", "a/b", "", ".hidden", "-dash", "a b"])
def test_bad_id_rejected_before_touching_disk(runtime: Runtime, tmp_path: Path, cid: str) -> None:
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = runtime.run("create", "--bundle", tmp_path / "nowhere", "--", cid)
    assert result.returncode != 0
    assert len(stderr_lines(result)) == 1, result.stderr
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [p for p in after if p.parts[0] != "io"] == [p for p in before if p.parts[0] != "io"]
