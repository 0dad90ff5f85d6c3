"""Fixtures for pyruntime's tests.

Fixture API (see tests/support/ for the helpers behind it):

- ``busybox_rootfs`` (session): Path of a busybox-static rootfs template, built once.
- ``bundle(args=("true",), overrides=None, *, name="bundle", env=()) -> Bundle``: writes
  ``<tmp>/<name>/config.json`` (runc's default config with terminal false, root.readonly
  false, ``process.args = args``, *env* entries appended, *overrides* deep-merged: dicts
  merge, lists replace, ``support.DELETE`` removes a key) next to ``<tmp>/<name>/rootfs``
  (a hard-link clone of the template).  ``Bundle`` is path-like; ``.config`` is the dict,
  edit it and call ``.write()``.
- ``runtime -> support.Runtime``: the CLI on a private ``--root`` (``<tmp>/root``, never
  /run/pyruntime).  ``.run(*args, input=None, check=False, timeout=30)`` runs
  ``[sys.executable, "-m", "pyruntime", "--root", root, *args]`` and returns a
  CompletedProcess with text stdout/stderr; ``.api`` is a ``pyruntime.api.Runtime`` on
  the same root; plus ``.run_bundle``, ``.create``,
  ``.output``, ``.start``, ``.state``, ``.status``, ``.wait_status``, ``.kill``,
  ``.delete``, ``.ids``, ``.popen``, ``.cmd``.
- Tests marked ``@pytest.mark.root`` are skipped when not root (they fail instead under
  CI=true) and get the leftover check: after the test, ``delete --force`` every container
  still known under the test's root, then fail the test if any state dir, mount or
  process of the test is left, or any process sits in a pid namespace that did not exist
  before the test, or any cgroup named with the test's token is left.
- These build on pyruntime's public test surface (pyruntime/api/): ``Bundle`` is
  ``pyruntime.api.Bundle``, the rootfs and the leftover checks are the package's, and the
  skip and the check above are those of its pytest plugin (marker ``root_only``, teardown
  of ``pyruntime_runtime``; tests/test_api_plugin.py uses those directly).
- Every bundle gets ``linux.cgroupsPath = "pyrt-test-<token>-<name>"`` (relative: under
  the test's own cgroups; support/cgroups.py), so that concurrent test runs never share a
  cgroup; ``overrides={"linux": {"cgroupsPath": DELETE}}`` tests the runtime's default.
- ``PYRUNTIME_TEST_RUNTIME="runc"`` points the tests at another runtime (for comparison);
  tests marked ``pyruntime_only`` (own messages, own state file) are then skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyruntime.api import Bundle
from pyruntime.api.pytest_plugin import MARKER as ROOT_ONLY
from pyruntime.api.pytest_plugin import clean_up_after_test, teardown_on_sigterm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.basetemp import remove_if_passed, session_basetemp
from support.cgroups import cgroups_path
from support.config import deep_merge, default_config
from support.lanes import skip_outside_lanes
from support.leftovers import TOKEN_VAR, snapshot_pid_namespaces
from support.runtime import Runtime, client_binary, served_suite, using_other_runtime
from support.served import SOCKET_ENV, Server, stale_client

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


_OWN_BASETEMP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        own = session_basetemp()
        if own is not None:
            config.option.basetemp = str(own)
            config.stash[_OWN_BASETEMP] = own
    teardown_on_sigterm(config)  # a timeout's SIGTERM still deletes the tests' containers
    if IN_CI:  # root tests must run in CI: the plugin fails them instead of skipping
        config.option.pyruntime_require_root = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own is not None:
        remove_if_passed(own, exitstatus)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # `root` is the plugin's root_only, plus the leftover check below
        if item.get_closest_marker("root"):
            item.add_marker(ROOT_ONLY)
    if using_other_runtime():
        skip = pytest.mark.skip(
            reason="pyruntime_only: checks pyruntime's own messages or state file, and "
            "PYRUNTIME_TEST_RUNTIME points the tests at another runtime"
        )
        for item in items:
            if item.get_closest_marker("pyruntime_only"):
                item.add_marker(skip)
    if not _has_cgroup_v2_controllers():
        skip_v2 = pytest.mark.skip(reason="no cgroup v2 controllers on this host (hybrid); "
                                   "runs in make test-cgroupv2")
        for item in items:
            if item.get_closest_marker("cgroupv2"):
                item.add_marker(skip_v2)
    skip_outside_lanes(items)


def _has_cgroup_v2_controllers() -> bool:
    """/sys/fs/cgroup is a cgroup2 mount with controllers (not a hybrid host's empty one)."""
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return bool(f.read().split())
    except OSError:
        return False


@pytest.fixture(scope="session")
def busybox_rootfs(pyruntime_busybox_rootfs: Path) -> Path:
    """The plugin's: one busybox-static rootfs per session (pyruntime/api/rootfs.py)."""
    return pyruntime_busybox_rootfs


@pytest.fixture
def test_token(pyruntime_token: str) -> str:
    """Put in every container's environment as PYRUNTIME_TEST_TOKEN, to find leftovers
    (the plugin's token: the same test, the same mark)."""
    return pyruntime_token


@pytest.fixture
def bundle(
    tmp_path: Path, busybox_rootfs: Path, test_token: str
) -> Callable[..., Bundle]:
    def make(
        args: list[str] | tuple[str, ...] = ("true",),
        overrides: dict[str, Any] | None = None,
        *,
        name: str = "bundle",
        env: list[str] | tuple[str, ...] = (),
    ) -> Bundle:
        # a cgroup of its own per test and bundle, named "pyrt-test-..." (support/cgroups.py);
        # overrides {"linux": {"cgroupsPath": DELETE}} get the runtime's default
        overrides = deep_merge({"linux": {"cgroupsPath": cgroups_path(test_token, name)}},
                               overrides)
        config = default_config(args, overrides, env=[*env, f"{TOKEN_VAR}={test_token}"])
        return Bundle.busybox(tmp_path / name, template=busybox_rootfs, config=config)

    return make


@pytest.fixture(scope="session", autouse=True)
def _served_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """PYRUNTIME_TEST_SERVED=1 (`make test-served`): one `pyruntime serve` for the whole
    run; every verb goes through the `pyruntime` client to it."""
    if not served_suite() or not IS_ROOT:
        yield
        return
    stale = stale_client(client_binary())
    if stale:
        pytest.exit(f"make test-served: {stale}", returncode=1)
    server = Server(tmp_path_factory.mktemp("served"))
    os.environ[SOCKET_ENV] = str(server.socket)
    try:
        yield
    finally:
        del os.environ[SOCKET_ENV]
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _private_default_image_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A verb run without --image-root (a test that builds its own command line) uses
    $PYRUNTIME_IMAGE_ROOT: point it into the session's tmp dir, never at the host's store
    (/var/lib/pyruntime).  A served worker takes the client's environment, so the same
    holds through `pyruntime serve`."""
    if os.environ.get("PYRUNTIME_IMAGE_ROOT"):
        yield
        return
    os.environ["PYRUNTIME_IMAGE_ROOT"] = str(tmp_path_factory.mktemp("default-image-root"))
    try:
        yield
    finally:
        del os.environ["PYRUNTIME_IMAGE_ROOT"]


@pytest.fixture
def runtime(tmp_path: Path, test_token: str) -> Runtime:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    return Runtime(root=root, workdir=tmp_path, token=test_token)


@pytest.fixture(autouse=True)
def _root_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests marked root (skipped when not root by the plugin's root_only): afterwards,
    clean up and check that nothing of the test is left (see the module docstring)."""
    if request.node.get_closest_marker("root") is None or not IS_ROOT:
        yield
        return
    runtime: Runtime = request.getfixturevalue("runtime")
    # Machine-wide: any new pid namespace counts. Only under CI, where nothing else runs;
    # developers' concurrent runs would trip it (the token and path checks still apply).
    pidns_before = snapshot_pid_namespaces() if os.environ.get("CI") == "true" else None
    yield
    other = using_other_runtime()  # another runtime's containers: through its CLI
    report = clean_up_after_test(
        runtime.api, runtime.workdir, runtime.token, strict=False, pidns_before=pidns_before,
        ids=set(runtime.ids()) | set(runtime.state_dirs()) if other else None,
        delete=(lambda cid: runtime.run("delete", "--force", cid, timeout=30)) if other
        else None)
    if report:
        pytest.fail(report, pytrace=False)
