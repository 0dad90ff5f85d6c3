"""pyruntime.api through its pytest plugin, as a user's test suite would use them: this file
imports nothing of pyruntime but pyruntime.api, and only the plugin's fixtures."""

from __future__ import annotations

import pytest

from pyruntime.api import ContainerError, Result

pytestmark = pytest.mark.root_only


def test_run_captures_output_and_exit_status(pyruntime_runtime, oci_bundle) -> None:
    bundle = oci_bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])
    result = pyruntime_runtime.run(bundle, "c1")
    assert result == Result(3, b"out\n", b"err\n")
    assert pyruntime_runtime.list() == []  # run deletes the container when it exits


def test_run_with_args_and_input(pyruntime_runtime, oci_bundle) -> None:
    bundle = oci_bundle(["false"])
    result = pyruntime_runtime.run(bundle, "c1", args=["sh", "-c", "tr a-z A-Z; hostname"],
                                   input=b"abc\n")
    assert (result.returncode, result.stdout) == (0, b"ABC\npyruntime\n")
    assert bundle.config["process"]["args"] == ["false"]  # config.json is restored
    assert pyruntime_runtime.run(bundle, "c1").returncode == 1


def test_created_container_exec_kill_wait(pyruntime_runtime, oci_bundle) -> None:
    bundle = oci_bundle(["sh", "-c", "echo started; exec sleep 600"], hostname="box")
    with pyruntime_runtime.create(bundle, "c1") as c:
        state = c.state()
        assert (state["id"], state["status"]) == ("c1", "created")
        assert [r["id"] for r in pyruntime_runtime.list()] == ["c1"]
        c.start()
        assert c.state()["status"] == "running"
        seen = c.exec(["sh", "-c", "hostname; id -u; pwd; echo $GREETING"],
                      env={"GREETING": "hi"}, cwd="/tmp", user=65534)
        assert seen == Result(0, b"box\n65534\n/tmp\nhi\n", b"")
        assert c.exec(["sh", "-c", "exit 7"]).returncode == 7
        assert pyruntime_runtime.get("c1").state()["pid"] == state["pid"]
        c.kill("KILL")
        assert c.wait(timeout=30) == 128 + 9
        assert c.state()["status"] == "stopped"
        assert c.output() == b"started\n"
    assert pyruntime_runtime.list() == []  # the context manager deleted it


def test_wait_reports_the_exit_code(pyruntime_runtime, oci_bundle) -> None:
    with pyruntime_runtime.create(oci_bundle(["sh", "-c", "exit 5"]), "c1") as c:
        c.start()
        assert c.wait(timeout=30) == 5
        c.delete()
    assert pyruntime_runtime.list() == []


def test_runtime_failures_raise_the_cli_line(pyruntime_runtime, oci_bundle) -> None:
    bundle = oci_bundle(["/no/such/program"])
    with pytest.raises(ContainerError) as run_error:
        pyruntime_runtime.run(bundle, "c1")
    assert "/no/such/program" in run_error.value.message
    assert "\n" not in run_error.value.message

    with pytest.raises(ContainerError, match="/no/such/program"):
        pyruntime_runtime.create(bundle, "c2")

    bad = oci_bundle(["sh"], name="bad", process={"args": []})
    with pytest.raises(ContainerError) as create_error:
        pyruntime_runtime.create(bad, "c3")
    assert create_error.value.path == "process.args"
    assert str(create_error.value).startswith("config.json: process.args: ")

    with pytest.raises(ContainerError, match="container nope does not exist"):
        pyruntime_runtime.get("nope")
    with pyruntime_runtime.create(oci_bundle(["sleep", "600"], name="ok"), "c4") as c:
        c.start()
        with pytest.raises(ContainerError, match="/no/such/program"):
            c.exec(["/no/such/program"])
        with pytest.raises(ContainerError, match="invalid signal"):
            c.kill("NOPE")
        with pytest.raises(ContainerError, match="not stopped"):
            c.delete()
    assert pyruntime_runtime.list() == []
