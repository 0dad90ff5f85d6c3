"""Fixtures of the client suites (integration/containerd, podman, docker); the helpers
are in integration/common/clients.py. Run by `make integration` (integration/run.sh),
never by `make test`. Root only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "common"))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))

import busybox_image

from pyruntime.api.pytest_plugin import teardown_on_sigterm
from support.lanes import skip_outside_lanes


def pytest_configure(config: pytest.Config) -> None:
    teardown_on_sigterm(config)  # a timeout's SIGTERM still stops the daemons and containers


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the client suites need root")
    return busybox_image.build(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="session", autouse=True)
def _served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """PYRUNTIME_INTEGRATION_SERVED=1: the clients' calls go to one `pyruntime serve`."""
    if os.environ.get("PYRUNTIME_INTEGRATION_SERVED", "") in ("", "0") or os.geteuid() != 0:
        yield
        return
    socket = tmp_path_factory.mktemp("serve") / "serve.sock"
    repo = Path(__file__).resolve().parents[1]
    server = subprocess.Popen([str(repo / ".venv" / "bin" / "pyruntime-python"), "serve",
                               "--socket", str(socket)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().startswith("ready "), "pyruntime serve did not start"
    os.environ["PYRUNTIME_SERVE_SOCKET"] = str(socket)
    try:
        yield
    finally:
        del os.environ["PYRUNTIME_SERVE_SOCKET"]
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked criu or systemd run in their lanes, else skip saying why."""
    skip_outside_lanes(items)
