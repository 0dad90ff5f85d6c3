"""Tests that need a lane's kernel or init (markers criu, systemd): where this machine
lacks it they skip, naming the lane that runs them. Both suites' conftests (tests/ and
integration/) use this one rule."""

from __future__ import annotations

import os

import pytest

from pyruntime.criu.probe import criu_does_not_work


def skip_outside_lanes(items: list[pytest.Item]) -> None:
    criu_items = [item for item in items if item.get_closest_marker("criu")]
    why = criu_does_not_work() if criu_items else ""
    if why:
        skip = pytest.mark.skip(reason=f"CRIU does not work here ({why}); "
                                "runs in make test-cgroupv2")
        for item in criu_items:
            item.add_marker(skip)
    if not os.path.isdir("/run/systemd/system"):
        skip = pytest.mark.skip(reason="systemd is not PID 1 here (no /run/systemd/system); "
                                "runs in make test-systemd")
        for item in items:
            if item.get_closest_marker("systemd"):
                item.add_marker(skip)
