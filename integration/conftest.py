"""Fixtures of the client suites (integration/containerd, integration/podman); the helpers
are in integration/common/clients.py. Run by `make integration` (integration/run.sh),
never by `make test`. Root only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "common"))

import busybox_image  # noqa: E402


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the client suites need root")
    return busybox_image.build(tmp_path_factory.mktemp("image"))
