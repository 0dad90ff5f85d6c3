"""The typed config.json model: shapes checked, JSON paths named, unknown fields ignored."""

from __future__ import annotations

import json

import pytest

from pyruntime.errors import Failure
from pyruntime.spec.default import default_spec
from pyruntime.spec.load import parse_config


def _config(**changes: object) -> dict:
    spec = default_spec()
    spec["process"]["terminal"] = False
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        if value is ...:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    return spec


def _error(spec: dict) -> str:
    with pytest.raises(Failure) as info:
        parse_config(json.dumps(spec))
    return str(info.value)


def test_default_spec_round_trips() -> None:
    spec = parse_config(json.dumps(_config()))
    assert spec.process.args == ["sh"]
    assert spec.process.capabilities.bounding == ["CAP_AUDIT_WRITE", "CAP_KILL",
                                                  "CAP_NET_BIND_SERVICE"]
    assert [ns.type for ns in spec.linux.namespaces] == ["pid", "network", "ipc", "uts", "mount"]
    assert spec.mounts[1].options[0] == "nosuid"


def test_unknown_fields_are_ignored() -> None:
    spec = _config(process__futureField={"x": 1}, somethingNew=[1, 2])
    assert parse_config(json.dumps(spec)).process.cwd == "/"


@pytest.mark.parametrize(("changes", "message"), [
    ({"process__args": "sh"},
     "config.json: process.args: expected a list of strings, got a string"),
    ({"process__args": ["sh", 1]}, "config.json: process.args[1]: expected a string, got a number"),
    ({"process__user__uid": "0"}, "config.json: process.user.uid: expected an integer"),
    ({"process__user__uid": True}, "config.json: process.user.uid: expected an integer"),
    ({"process__cwd": ...}, "config.json: process.cwd: required field is missing"),
    ({"ociVersion": ...}, "config.json: ociVersion: required field is missing"),
    ({"ociVersion": "2.0.0"}, "config.json: ociVersion: unsupported version '2.0.0'"),
    ({"mounts": [{"type": "tmpfs"}]}, "config.json: mounts[0].destination: required field"),
    ({"linux__namespaces": [{"type": "pidd"}]}, "linux.namespaces[0].type: unknown namespace"),
    ({"linux__namespaces": [{"type": "pid"}, {"type": "pid"}]}, "namespace 'pid' given twice"),
    ({"linux__uidMappings": [{"containerID": 0, "hostID": "x", "size": 1}]},
     "config.json: linux.uidMappings[0].hostID: expected an integer, got a string"),
    ({"process__cwd": "tmp"}, "config.json: process.cwd: must be an absolute path"),
    ({"process__env": ["NOEQUALS"]}, "config.json: process.env[0]: expected KEY=VALUE"),
    ({"process__args": []}, "config.json: process.args: must name the program to run"),
    ({"process": ...}, "config.json: process: required to create a container"),
    ({"mounts": [{"destination": "", "type": "tmpfs"}]},
     "config.json: mounts[0].destination: must be an absolute path"),
    ({"linux__namespaces": [{"type": "pid"}]}, "config.json: hostname: setting the hostname"),
    ({"linux__uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]},
     "config.json: linux.uidMappings: id mappings need a user namespace"),
    ({"annotations": {"a": 1}}, "config.json: annotations.a: expected a string"),
])
def test_bad_shapes_name_the_json_path(changes: dict, message: str) -> None:
    assert message in _error(_config(**changes))


def test_malformed_json() -> None:
    with pytest.raises(Failure, match=r"^config.json: invalid JSON"):
        parse_config(b"{not json")
