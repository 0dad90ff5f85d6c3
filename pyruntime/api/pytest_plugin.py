"""The pytest plugin (entry point ``pytest11``: installing pyruntime is enough).

- ``pyruntime_runtime``: a pyruntime.api.Runtime on a private root in the test's tmp_path.
  At teardown every container still there fails the test, by name, and is deleted
  (force); then mounts, processes and cgroups the test left are reported and removed.
- ``oci_bundle(args=None, *, name=None, **config_changes) -> Bundle``: a busybox bundle
  in tmp_path (the rootfs hard-linked from one built per session); *config_changes* are
  deep-merged into the config.  Each gets PYRUNTIME_TEST_TOKEN in its environment and a
  relative ``linux.cgroupsPath`` named with it, which is how leftovers are found.
- ``@pytest.mark.root_only``: skipped, with the reason, when not root (failed instead with
  ``--pyruntime-require-root``: a CI job that must run them).  The fixtures need root too.
- Once ``pyruntime_runtime`` is used, SIGTERM interrupts the run as Ctrl-C does
  (``teardown_on_sigterm``): a CI job's timeout then still deletes the containers, where
  pytest's default (death) left them, their cgroups and their processes behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pyruntime.api import Bundle, Runtime

MARKER = "root_only"
NOT_ROOT_REASON = ("needs root: runs real containers (namespaces, mounts, pivot_root); "
                   "run pytest as root")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyruntime")
    group.addoption("--pyruntime-require-root", action="store_true", default=False,
                    help="fail root-only tests (marker root_only, fixture pyruntime_runtime) "
                         "when not root, instead of skipping them")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: needs root (runs real containers); skipped with the reason "
        "when not root (pyruntime's pytest plugin)")


_TERM_BEFORE = pytest.StashKey[Any]()


def _interrupt_once() -> Callable[[int, object], None]:
    """A SIGTERM handler that raises KeyboardInterrupt the first time only: `timeout`
    sends SIGTERM to pytest and then to its whole process group, and a second interrupt
    (or death) would cut the teardown short.  SIGKILL or SIGINT still end a hung one."""
    fired: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt(f"{signal.Signals(signum).name}: tearing down, then "
                                    "stopping")

    return handler


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then interrupt: a KeyboardInterrupt
    inside a clean-up would leave its containers, cgroups and processes behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.signal(s, lambda signum, _frame: got.append(signum)) for s in kinds}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if got:
        raise KeyboardInterrupt(f"{signal.Signals(got[0]).name} during the clean-up")


def teardown_on_sigterm(config: pytest.Config) -> None:
    """From now on until the session ends, SIGTERM raises KeyboardInterrupt, so that
    pytest runs the fixtures' teardown (which deletes containers) before it exits.  Left
    alone when someone else already handles SIGTERM."""
    if _TERM_BEFORE in config.stash or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    config.stash[_TERM_BEFORE] = signal.signal(signal.SIGTERM, _interrupt_once())


def pytest_unconfigure(config: pytest.Config) -> None:
    before = config.stash.get(_TERM_BEFORE, None)
    if before is not None:
        signal.signal(signal.SIGTERM, before)


def require_root(config: pytest.Config) -> None:
    """Skip (or, with --pyruntime-require-root, fail) the current test when not root."""
    __tracebackhide__ = True
    if os.geteuid() == 0:
        return
    if config.getoption("pyruntime_require_root"):
        pytest.fail(f"{NOT_ROOT_REASON} (--pyruntime-require-root: root tests must run, "
                    "not skip)", pytrace=False)
    pytest.skip(NOT_ROOT_REASON)


def needs_root(item: pytest.Item) -> bool:
    return (item.get_closest_marker(MARKER) is not None
            or "pyruntime_runtime" in getattr(item, "fixturenames", ()))


@pytest.hookimpl(trylast=True)  # after conftests that add the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Not root: a skip marker, so that the report names the test's own line."""
    if os.geteuid() == 0 or config.getoption("pyruntime_require_root"):
        return
    skip = pytest.mark.skip(reason=NOT_ROOT_REASON)
    for item in items:
        if needs_root(item):
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if needs_root(item) and item.config.getoption("pyruntime_require_root"):
        require_root(item.config)  # fails when not root


# -- after the test ------------------------------------------------------------------------

def container_ids(runtime: Runtime) -> list[str]:
    """Every container under the runtime's root: listed ones, and any directory (one being
    created, or with a corrupt state file); not ``images`` (the image store)."""
    from pyruntime.state import IMAGES_DIR

    ids = {r["id"] for r in runtime.list()}
    if runtime.root.is_dir():
        ids |= {p.name for p in runtime.root.iterdir() if p.is_dir() and p.name != IMAGES_DIR}
    return sorted(ids)


def clean_up_after_test(
    runtime: Runtime,
    workdir: Path,
    token: str | None,
    *,
    strict: bool = True,
    ids: Iterable[str] | None = None,
    delete: Callable[[str], object] | None = None,
    pidns_before: set[str] | None = None,
) -> str | None:
    """Delete (force) every container still under the root, then look for what the test
    left: a process, mount or state dir of *workdir* or *token*, a process in a pid
    namespace not in *pidns_before*, a cgroup named with *token*.  Removes what it found;
    returns the report to fail the test with, or None.  *strict*: a container still there
    is itself a failure (named in the report).  *ids*, *delete*: how to find and delete
    the containers (default: through *runtime*)."""
    with _interrupts_deferred():
        return _clean_up(runtime, workdir, token, strict=strict, ids=ids, delete=delete,
                         pidns_before=pidns_before)


def _clean_up(
    runtime: Runtime,
    workdir: Path,
    token: str | None,
    *,
    strict: bool,
    ids: Iterable[str] | None,
    delete: Callable[[str], object] | None,
    pidns_before: set[str] | None,
) -> str | None:
    from pyruntime.api import Container, ContainerError
    from pyruntime.api.leftovers import (
        detach_mounts,
        find_cgroups,
        kill_processes,
        remove_cgroups,
        wait_for_no_leftovers,
    )

    still = sorted(set(container_ids(runtime) if ids is None else ids))
    for cid in still:
        try:
            if delete is None:
                Container(runtime, cid).delete(force=True)
            else:
                delete(cid)
        except (ContainerError, OSError, TimeoutError):
            pass  # what stays is reported below
        except Exception:  # e.g. a hung CLI delete: reported as leftovers
            pass
    runtime.close()
    left = wait_for_no_leftovers(workdir, token, pidns_before, runtime.root)
    cgroups_left = find_cgroups(token) if token else []
    report = []
    if strict and still:
        report.append("container(s) still there after the test (deleted): " + ", ".join(still))
    if left:
        kill_processes(left.processes)
        detach_mounts(workdir)
        report.append("left behind after the test:\n" + left.report())
    if cgroups_left:
        remove_cgroups(find_cgroups(token) if token else [])
        report.append("cgroups left behind after the test:\n" + "\n".join(cgroups_left))
    return "\n".join(report) or None


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pyruntime_busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox-static rootfs, built once per session; bundles hard-link it."""
    from pyruntime.api.rootfs import build_busybox_rootfs

    return build_busybox_rootfs(tmp_path_factory.mktemp("pyruntime-busybox") / "rootfs")


@pytest.fixture
def pyruntime_token() -> str:
    """This test's mark on its containers (environment, cgroup name), to find leftovers."""
    return secrets.token_hex(8)


@pytest.fixture
def oci_bundle(tmp_path: Path, pyruntime_busybox_rootfs: Path, pyruntime_token: str
               ) -> Callable[..., Bundle]:
    from pyruntime.api.bundle import Bundle, busybox_config, deep_merge
    from pyruntime.api.leftovers import TOKEN_VAR, cgroups_path

    count = 0

    def make(args: Iterable[str] | None = None, *, name: str | None = None,
             **config_changes: Any) -> Bundle:
        nonlocal count
        count += 1
        name = name or ("bundle" if count == 1 else f"bundle-{count}")
        config = busybox_config() if args is None else busybox_config(list(args))
        config = deep_merge(config, config_changes)
        env = config.setdefault("process", {}).setdefault("env", [])
        env.append(f"{TOKEN_VAR}={pyruntime_token}")
        linux = config.setdefault("linux", {})
        if "cgroupsPath" not in config_changes.get("linux", {}):  # a cgroup of its own
            linux["cgroupsPath"] = cgroups_path(pyruntime_token, name)
        return Bundle.busybox(tmp_path / name, template=pyruntime_busybox_rootfs,
                              config=config)

    return make


@pytest.fixture
def pyruntime_runtime(request: pytest.FixtureRequest, tmp_path: Path, pyruntime_token: str
                      ) -> Iterator[Runtime]:
    from pyruntime.api import Runtime

    require_root(request.config)
    teardown_on_sigterm(request.config)
    root = tmp_path / "pyruntime-root"
    root.mkdir(mode=0o700)
    runtime = Runtime(root)
    yield runtime
    report = clean_up_after_test(runtime, tmp_path, pyruntime_token, strict=True)
    if report:
        pytest.fail(report, pytrace=False)
