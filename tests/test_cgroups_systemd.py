"""The cgroup suite (test_cgroups.py) again, every verb with --systemd-cgroup: the same
limits, enforcement, pause, update, kill --all, ps, events and cleanup when the cgroup is
a systemd scope. Runs where systemd is PID 1 (make test-systemd). Left out: where the
cgroupfs driver puts a cgroupsPath, and the count of device filters (systemd attaches
its own next to the driver's).
"""

from __future__ import annotations

import pytest
from test_cgroups import (  # noqa: F401 - collected again here, with the systemd driver
    test_allocation_past_the_limit_is_oom_killed_and_reported,
    test_delete_force_of_a_paused_container,
    test_denied_device_cannot_be_opened,
    test_events_stats,
    test_failed_create_leaves_no_cgroup,
    test_fork_bomb_stops_at_the_pids_limit,
    test_kill_all_reaches_every_process_without_a_pid_namespace,
    test_kill_all_sigkill,
    test_limits_are_in_the_cgroup_files,
    test_pause_freezes_every_process_and_resume_thaws,
    test_ps,
    test_update_changes_limits_live,
    test_v2_init_starts_in_its_cgroup_and_unified_keys,
    test_v2_unified_key_that_does_not_exist_fails,
)

from support.cgroups import SYSTEMD_ENV

pytestmark = [pytest.mark.root, pytest.mark.systemd]


@pytest.fixture(autouse=True)
def _systemd_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SYSTEMD_ENV, "1")
