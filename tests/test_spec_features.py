"""`spec` writes what `runc spec` writes (the departures are listed here, each with its
reason); `features` lists exactly what works, compared with runc's own list."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support import Runtime
from support.runc import RUNC

needs_runc = pytest.mark.skipif(RUNC is None, reason="runc (the oracle) is not installed")

# key path -> why pyruntime writes something else
SPEC_DEPARTURES = {
    "ociVersion": "pyruntime implements runtime-spec 1.2 and says so; runc 1.1.5 writes "
                  "1.0.2-dev",
    "hostname": "the runtime's own name, as runc writes \"runc\"",
}


def flatten(value: object, path: str = "") -> dict[str, object]:
    """{"a.b[0].c": leaf} for every leaf, so two configs compare key by key."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, sub in value.items():
            out |= flatten(sub, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list):
        out = {f"{path}[]": len(value)}
        for i, sub in enumerate(value):
            out |= flatten(sub, f"{path}[{i}]")
        return out
    return {path: value}


def write_spec(cmd: list[str], where: Path, *flags: str) -> tuple[str, dict]:
    where.mkdir()
    subprocess.run([*cmd, "spec", *flags], cwd=where, check=True, capture_output=True)
    text = (where / "config.json").read_text()
    return text, json.loads(text)


@needs_runc
@pytest.mark.pyruntime_only
@pytest.mark.parametrize("flags", [(), ("--rootless",)], ids=["default", "rootless"])
def test_spec_matches_runc_key_by_key(runtime: Runtime, tmp_path: Path,
                                      flags: tuple[str, ...]) -> None:
    runc_text, runc = write_spec([RUNC], tmp_path / "runc", *flags)
    ours_text, ours = write_spec(runtime.cmd(), tmp_path / "ours", *flags)
    a, b = flatten(runc), flatten(ours)
    assert list(a) == list(b), "same keys in the same order"
    differ = {k for k in a if a[k] != b[k]}
    assert differ == set(SPEC_DEPARTURES), {k: (a[k], b[k]) for k in differ}
    # the same text layout (tab indentation, key order), apart from those values
    assert len(runc_text.splitlines()) == len(ours_text.splitlines())
    assert runc_text.startswith("{\n\t\"ociVersion\"") and ours_text.startswith(
        "{\n\t\"ociVersion\"")


# runc's mount options that pyruntime does not list, and why
FEATURE_DEPARTURES = {
    "acl": "MS_POSIXACL: not in pyruntime's flag table (no test proves it), so not listed",
    "noacl": "see acl",
    "iversion": "MS_I_VERSION: not in pyruntime's flag table (no test proves it)",
    "noiversion": "see iversion",
}


@needs_runc
@pytest.mark.pyruntime_only
def test_features_against_runc(runtime: Runtime) -> None:
    ours = json.loads(runtime.run("features", check=True).stdout)
    runc = json.loads(subprocess.run([RUNC, "features"], check=True,
                                     capture_output=True, text=True).stdout)
    assert ours["hooks"] == runc["hooks"]
    missing = set(runc["mountOptions"]) - set(ours["mountOptions"])
    assert missing == set(FEATURE_DEPARTURES), missing
    # runc 1.1 has no idmapped mounts; pyruntime's are proved by test_mount_options.py
    assert {"idmap", "ridmap", "tmpcopyup", "rro"} <= set(ours["mountOptions"])
    assert ours["linux"]["mountExtensions"]["idmap"]["enabled"] is True


def test_every_listed_mount_option_is_understood() -> None:
    """Nothing in mountOptions falls through to the filesystem as data."""
    from pyruntime.plan.mount_options import parse_options
    from pyruntime.verbs.features import features

    for option in features()["mountOptions"]:
        assert parse_options([option]).data is None, option
