"""One check of a process for create and exec (spec/process_rules.py): the same refusal,
word for word, under config.json's `process.` and under process.json's top level. No root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pyruntime.errors import Failure
from pyruntime.exec_process import load_process_file
from pyruntime.spec.default import default_spec
from pyruntime.spec.load import parse_config


def _lsm(marker: str) -> str:
    why = ("is not supported by pyruntime" if os.path.exists(marker)
           else "is not enabled on this host")
    return f"{why}; remove the field to run without it"


@pytest.mark.parametrize(("change", "message"), [
    ({"args": []}, "args: must name the program to run"),
    ({"cwd": "tmp"}, "cwd: must be an absolute path: 'tmp'"),
    ({"env": ["A=1", "B"]}, "env[1]: expected KEY=VALUE, got 'B'"),
    ({"capabilities": {"ambient": ["CAP_NOPE"]}},
     "capabilities.ambient: unknown capability 'CAP_NOPE'"),
    ({"rlimits": [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]},
     "rlimits[0].type: unknown rlimit 'RLIMIT_NOPE'"),
    ({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]},
     "rlimits[0]: RLIMIT_NOFILE soft limit above hard"),
    ({"user": {"uid": 0, "gid": 0, "umask": 0o1000}}, "user.umask: must be between 0 and 0777"),
    ({"user": {"uid": 0, "gid": 0, "additionalGids": [1, -5]}},
     "user.additionalGids[1]: -5 is out of range for uint32 (0..4294967295)"),
    ({"oomScoreAdj": 1001}, "oomScoreAdj: must be between -1000 and 1000"),
    ({"consoleSize": {"height": 65536, "width": 1}},
     "consoleSize.height: 65536 is out of range for uint16 (0..65535)"),
    ({"apparmorProfile": "x"},
     f"apparmorProfile: AppArmor {_lsm('/sys/kernel/security/apparmor')}"),
    ({"selinuxLabel": "x"}, f"selinuxLabel: SELinux {_lsm('/sys/fs/selinux/enforce')}"),
])
def test_create_and_exec_refuse_alike(tmp_path: Path, change: dict, message: str) -> None:
    config = default_spec()
    config["process"].update(change)
    with pytest.raises(Failure) as create:
        parse_config(json.dumps(config))
    path = tmp_path / "process.json"
    path.write_text(json.dumps(config["process"]))
    with pytest.raises(Failure) as exec_:
        load_process_file(str(path))
    assert str(create.value) == f"config.json: process.{message}"
    assert str(exec_.value) == f"process.json: {message}"
