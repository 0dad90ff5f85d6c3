"""pyruntime.api against the CLI: the same lines, the same containers; the plugin when not
root; and the CLI never importing the API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyruntime.api import Bundle, ContainerError, Result
from pyruntime.cli import launcher
from support.leftovers import TOKEN_VAR
from support.oci_builder import F, LayoutBuilder, busybox_layer
from support.runtime import Runtime, describe

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]


def cli_error(result: subprocess.CompletedProcess[str]) -> str:
    __tracebackhide__ = True
    assert result.returncode == 1, describe(result)
    line, = result.stderr.splitlines()
    assert line.startswith("pyruntime: "), describe(result)
    return line.removeprefix("pyruntime: ")


@pytest.mark.parametrize("overrides, path", [
    ({"process": {"args": []}}, "process.args"),
    ({"hostname": 7}, "hostname"),
    ({"mounts": [{"destination": "", "type": "tmpfs", "source": "tmpfs"}]},
     "mounts[0].destination"),
    ({"process": {"args": ["/no/such/program"]}}, None),
])
def test_container_error_is_the_cli_line(runtime: Runtime, bundle, overrides, path) -> None:
    b = bundle(overrides=overrides)
    line = cli_error(runtime.run("create", "--bundle", b, "c1"))
    with pytest.raises(ContainerError) as e:
        runtime.api.create(b, "c1")
    assert (e.value.message, e.value.exit_code, e.value.path) == (line, 1, path)
    with pytest.raises(ContainerError) as e:
        runtime.api.run(b, "c1")
    assert e.value.message == line
    assert runtime.api.list() == [] and runtime.ids() == []


def test_exec_error_is_the_cli_line(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(("sleep", "600")), "c1")
    runtime.start("c1")
    line = cli_error(runtime.run("exec", "c1", "/no/such/program"))
    with pytest.raises(ContainerError) as e:
        runtime.api.get("c1").exec(["/no/such/program"])
    assert (e.value.message, e.value.exit_code, e.value.path) == (line, 1, None)
    # a process that ran and failed: the CLI's status, and a Result for the API
    assert runtime.run("exec", "c1", "sh", "-c", "exit 3").returncode == 3
    assert runtime.api.get("c1").exec(["sh", "-c", "exit 3"]) == Result(3, b"", b"")
    runtime.delete("c1", force=True)


def test_one_root_two_front_ends(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(("sleep", "600"), name="cli"), "by-cli")
    by_api = runtime.api.create(bundle(("sleep", "600"), name="api"), "by-api")
    assert runtime.api.list() == json.loads(runtime.run("list", "--format", "json").stdout)
    assert runtime.api.get("by-cli").state() == runtime.state("by-cli")
    assert by_api.state() == runtime.state("by-api")
    runtime.start("by-api")
    runtime.api.get("by-cli").start()
    assert {runtime.status("by-cli"), by_api.state()["status"]} == {"running"}
    runtime.api.get("by-cli").kill("KILL")
    runtime.wait_status("by-cli", "stopped")
    with pytest.raises(ContainerError, match="exit status unknown"):
        runtime.api.get("by-cli").wait(timeout=30)  # not its parent: the CLI's create was
    runtime.kill("by-api", "KILL")
    assert by_api.wait(timeout=30) == 137
    runtime.api.get("by-cli").delete()
    runtime.delete("by-api")
    runtime.api.close()
    assert runtime.api.list() == []


def test_bundle_from_image(tmp_path: Path, runtime: Runtime) -> None:
    layout = LayoutBuilder(tmp_path / "layout")
    img = layout.image([busybox_layer([F("hello", b"from the image\n")])],
                       config={"Cmd": ["cat", "/hello"], "Env": [f"{TOKEN_VAR}={runtime.token}"]})
    layout.tag(img.descriptor, "hello")
    runtime.run("image", "load", f"oci:{layout.path}:hello", check=True, timeout=60)
    b = Bundle.from_image("hello", tmp_path / "b", image_root=runtime.image_root)
    try:
        assert b.config["process"]["args"] == ["cat", "/hello"]
        assert runtime.api.run(b, "c1") == Result(0, b"from the image\n", b"")
    finally:
        b.remove()
    assert not (tmp_path / "b").exists()
    with pytest.raises(ContainerError, match="nope"):
        Bundle.from_image("nope", tmp_path / "b2", image_root=runtime.image_root)
    assert not (tmp_path / "b2").exists()


def test_the_cli_never_imports_the_api(tmp_path: Path, runtime: Runtime, bundle) -> None:
    entry = tmp_path / "pyruntime-launcher"
    launcher.write(str(entry))
    b = bundle(("true",))
    for args in (("run", "--bundle", str(b), "c1"), ("list",), ("state", "nope")):
        proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(entry),
                               "--root", str(runtime.root), *args], capture_output=True,
                              text=True, timeout=60)
        assert "pyruntime.cli.main" in proc.stderr, proc.stderr  # the import log is there
        assert "pyruntime.api" not in proc.stderr, args


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_the_plugin_skips_root_tests_when_not_root(pytester: pytest.Pytester) -> None:
    """In a user namespace of its own, pytest runs as an unmapped user: not root."""
    pytester.makepyfile(test_inner="""
        import os, pytest

        def test_uid():
            assert os.geteuid() != 0

        @pytest.mark.root_only
        def test_marked():
            pass

        def test_fixture(pyruntime_runtime):
            pass
    """)
    argv = ["unshare", "--user", sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
            "-rs", f"--basetemp={pytester.path / 'tmp'}"]
    skipped = pytester.run(*argv, timeout=120)
    skipped.assert_outcomes(passed=1, skipped=2)
    skipped.stdout.fnmatch_lines(["SKIPPED * needs root: runs real containers*"] * 2)
    failed = pytester.run(*argv, "--pyruntime-require-root", timeout=120)
    failed.assert_outcomes(passed=1, errors=2)
    failed.stdout.fnmatch_lines(["*needs root*--pyruntime-require-root*"])


def test_default_root_is_the_clis() -> None:
    from pyruntime.api import Runtime as ApiRuntime
    from pyruntime.cli.table import GLOBAL_OPTIONS

    cli_default, = (o.default for o in GLOBAL_OPTIONS if o.dest == "root")
    assert ApiRuntime().root == Path(cli_default) == Path("/run/pyruntime")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_default_root_is_the_clis_for_a_rootless_caller(tmp_path: Path) -> None:
    """Not root (an unmapped user in a user namespace of its own) with XDG_RUNTIME_DIR set:
    the CLI keeps its state in $XDG_RUNTIME_DIR/pyruntime, and so must every API call
    (list/get/state read the root directly, run/create/exec pass it to the CLI's parser)."""
    probe = ("from pyruntime.api import Runtime; from pyruntime.cli import lean; "
             "from pyruntime.cli.main import Globals; "
             "print(Runtime().root); print(Globals(lean.parse(['list']).globals).root)")
    proc = subprocess.run(["unshare", "--user", sys.executable, "-c", probe],
                          env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    api_root, cli_root = proc.stdout.split()
    assert api_root == cli_root == str(tmp_path / "pyruntime")
