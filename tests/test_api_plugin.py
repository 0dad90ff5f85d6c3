"""pyruntime.api through its pytest plugin, as a user's test suite would use them: this file
imports nothing of pyruntime but pyruntime.api, and only the plugin's fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from pyruntime.api import DELETE, Bundle, ContainerError, Result

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


def _poll(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_sends_TERM_by_default(pyruntime_runtime, oci_bundle) -> None:
    script = ("trap 'echo got TERM; exit 0' TERM; echo ready; "
              "while :; do sleep 0.1; done")
    with pyruntime_runtime.create(oci_bundle(["sh", "-c", script]), "c1") as c:
        c.start()
        _poll(lambda: c.output() == b"ready\n", "the trap to be set")
        c.kill()
        assert c.wait(timeout=60) == 0  # the trap ran: TERM, not a default KILL
        assert c.output() == b"ready\ngot TERM\n"


def test_run_reports_a_signal_as_128_plus_n(pyruntime_runtime, oci_bundle) -> None:
    """The container's process kills itself (no pid namespace: it is not an init, which
    the kernel would protect): the status is 128+9, as a shell reports it."""
    namespaces = [{"type": t} for t in ("network", "ipc", "uts", "mount")]
    bundle = oci_bundle(["sh", "-c", "echo before; kill -KILL $$; echo after"],
                        linux={"namespaces": namespaces})
    assert pyruntime_runtime.run(bundle, "c1") == Result(128 + 9, b"before\n", b"")


def test_the_with_block_deletes_the_container_on_an_exception(pyruntime_runtime,
                                                              oci_bundle) -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        with pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "c1") as c:
            c.start()
            pid = c.state()["pid"]
            raise RuntimeError("the test failed half-way")
    assert pyruntime_runtime.list() == []
    assert not os.path.exists(f"/proc/{pid}/cmdline") or \
        open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] != b"sleep"
    with pytest.raises(ContainerError, match="container c1 does not exist"):
        pyruntime_runtime.get("c1")


def test_a_created_container_is_deleted_by_the_with_block(pyruntime_runtime,
                                                          oci_bundle) -> None:
    with pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "c1"):
        pass  # never started
    assert pyruntime_runtime.list() == []


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc (make setup installs it)")
def test_bundle_busybox_has_runcs_default_spec(pyruntime_runtime, tmp_path) -> None:
    """Bundle.busybox on its own (no fixture, no template): a busybox-static rootfs and
    `runc spec`'s config, with what a captured, writable test container needs."""
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True, timeout=60)
    runc = json.loads((tmp_path / "config.json").read_text())
    bundle = Bundle.busybox(tmp_path / "b", args=["sh", "-c", "echo hi; hostname"])
    assert bundle.path == tmp_path / "b" and os.fspath(bundle) == str(tmp_path / "b")
    assert json.loads((bundle.path / "config.json").read_text()) == bundle.config
    runc["process"].update(terminal=False, args=["sh", "-c", "echo hi; hostname"])
    runc["root"]["readonly"] = False
    # `pyruntime spec`'s only departures from runc's: its hostname and ociVersion
    runc.update(hostname="pyruntime", ociVersion=bundle.config["ociVersion"])
    assert bundle.config == runc
    assert (bundle.path / "rootfs" / "bin" / "busybox").is_file()
    assert pyruntime_runtime.run(bundle, "c1") == Result(0, b"hi\npyruntime\n", b"")
    bundle.config["hostname"] = "changed"
    bundle.write()
    assert pyruntime_runtime.run(bundle, "c2").stdout == b"hi\nchanged\n"
    bundle.config["process"]["args"] = ["true"]
    assert Bundle(bundle.path).config["hostname"] == "changed"
    changed = Bundle.busybox(tmp_path / "d", ["cat", "/etc/hostname"], hostname="x",
                             process={"cwd": "/tmp"}, linux={"maskedPaths": DELETE})
    assert (changed.config["process"]["cwd"], "maskedPaths" in changed.config["linux"]) \
        == ("/tmp", False)
    assert pyruntime_runtime.run(changed, "c3") == Result(0, b"rootfs\n", b"")


def test_verbs_that_need_no_process_run_in_the_callers(pyruntime_runtime, oci_bundle,
                                                       monkeypatch) -> None:
    """list, get, state, start, kill and delete call the verbs' code directly: with every
    way to start a process made to fail, they still work."""
    c = pyruntime_runtime.create(oci_bundle(["sleep", "600"]), "c1")

    def no_process(*_args, **_kwargs):
        raise AssertionError("a process was started")

    for module, name in ((subprocess.Popen, "__init__"), (os, "fork"), (os, "posix_spawn"),
                         (os, "posix_spawnp"), (os, "system"), (os, "execv"),
                         (os, "execve")):
        monkeypatch.setattr(module, name, no_process)
    assert [r["id"] for r in pyruntime_runtime.list()] == ["c1"]
    assert pyruntime_runtime.get("c1").state()["status"] == "created"
    c.start()
    assert c.state()["status"] == "running"
    c.kill("KILL")
    monkeypatch.undo()  # wait() reaps the keeper (subprocess)
    assert c.wait(timeout=60) == 128 + 9
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(os, "fork", no_process)
    c.delete()
    assert pyruntime_runtime.list() == []
