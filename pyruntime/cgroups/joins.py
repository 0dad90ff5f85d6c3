"""Where stage1 puts itself and the init (native/cgroup.c): the plan's cgroup fields.

Computed from the driver's paths, which are known before any cgroup is made, so it is
part of planning (plan/build.py for create, exec_process.py for exec), not of the
driver.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.driver import Driver
    from pyruntime.plan.build import Plan


def plan_joins(plan: Plan, driver: Driver) -> None:
    """Set plan.cgroup_procs, cgroup_dir and cgroup_dir_procs; plan.joins must be set.

    Once stage1 has joined a user namespace by path it is that namespace's root, and
    the kernel refuses it both CLONE_INTO_CGROUP and a write to a host cgroup.procs:
    with such a join the cgroup2 directory is joined first, with the v1 ones."""
    from pyruntime.plan.linux_consts import CLONE_NEWUSER

    clone = driver.clone_dir()
    procs = os.path.join(clone, "cgroup.procs") if clone else None
    plan.cgroup_procs = driver.join_files()
    if procs and any(flag == CLONE_NEWUSER for flag, _ in plan.joins):
        plan.cgroup_procs.append(procs)
        clone = procs = None
    plan.cgroup_dir, plan.cgroup_dir_procs = clone, procs


def plan_left_out(plan: Plan, driver: Driver) -> None:
    """Rootless: create left hierarchies out (driver.left_out, no rights to make them).
    Plan again without them, and bind this process's own cgroups where the cgroup
    mount named the directories never made."""
    from pyruntime.plan.cgroup_mount import bind_own_instead

    plan_joins(plan, driver)
    bind_own_instead(plan.mounts, set(driver.left_out.values()))
