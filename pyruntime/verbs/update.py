"""`update [--resources FILE|-] [--memory N ...] ID`: change a running container's limits.

The JSON form is what containerd sends: a LinuxResources object (runtime-spec
config-linux.md) on stdin. The flags are runc's; a flag overrides the same field of
the JSON. Only what is given changes; device rules are set at create only (as runc).
The new resources go through the same conversion (cgroups/settings.py) and executor
(cgroups/apply.py) as create's.
"""

from __future__ import annotations

import json
import sys

from pyruntime.cgroups import of_container
from pyruntime.cli.main import Globals
from pyruntime.errors import Failure, NotRunning
from pyruntime.state import Store

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
          "p": 1 << 50}

# flag dest -> (path in LinuxResources, parser name)
FLAGS = {
    "memory": (("memory", "limit"), "bytes"),
    "memory_reservation": (("memory", "reservation"), "bytes"),
    "memory_swap": (("memory", "swap"), "bytes"),
    "kernel_memory": (("memory", "kernel"), "bytes"),
    "kernel_memory_tcp": (("memory", "kernelTCP"), "bytes"),
    "cpu_share": (("cpu", "shares"), "int"),
    "cpu_period": (("cpu", "period"), "int"),
    "cpu_quota": (("cpu", "quota"), "int"),
    "cpu_burst": (("cpu", "burst"), "int"),
    "cpu_rt_period": (("cpu", "realtimePeriod"), "int"),
    "cpu_rt_runtime": (("cpu", "realtimeRuntime"), "int"),
    "cpu_idle": (("cpu", "idle"), "int"),
    "cpuset_cpus": (("cpu", "cpus"), "str"),
    "cpuset_mems": (("cpu", "mems"), "str"),
    "pids_limit": (("pids", "limit"), "int"),
    "blkio_weight": (("blockIO", "weight"), "int"),
}


def parse_bytes(flag: str, text: str) -> int:
    """'1048576', '512k', '100m', '1g', '-1' (unlimited), as runc's RAMInBytes."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    if len(t) > 1 and t[-1] == "b" and t[-2] in "kmgtp":  # "100mb", "1gb"
        t = t[:-1]
    unit = t[-1] if t and t[-1] in _UNITS else ""
    num = t[:-1] if unit else t
    try:
        value = float(num)
    except ValueError:
        raise Failure(f"update: --{flag.replace('_', '-')}: invalid size {text!r}") from None
    if unit not in _UNITS or value < 0:
        raise Failure(f"update: --{flag.replace('_', '-')}: invalid size {text!r}")
    return int(value * _UNITS[unit])


def resources_from(values: dict, stdin_text: str | None) -> dict:
    """The LinuxResources JSON object the flags and --resources describe."""
    data: dict = {}
    source = values.get("resources")
    if source:
        if source == "-":
            text = stdin_text if stdin_text is not None else sys.stdin.read()
        else:
            with open(source) as f:
                text = f.read()
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as e:
            raise Failure(f"update: --resources: not JSON: {e}") from None
        if not isinstance(data, dict):
            raise Failure("update: --resources: a LinuxResources JSON object is needed")
    for dest, ((section, field), kind) in FLAGS.items():
        raw = values.get(dest)
        if raw is None:
            continue
        if kind == "bytes":
            value: object = parse_bytes(dest, raw)
        elif kind == "int":
            try:
                value = int(raw)
            except ValueError:
                raise Failure(f"update: --{dest.replace('_', '-')}: not a number: "
                              f"{raw!r}") from None
        else:
            value = raw
        data.setdefault(section, {})[field] = value
    return data


def main(g: Globals, values: dict) -> int:
    from pyruntime.spec.model import Resources
    from pyruntime.spec.record import DecodeError, decode

    store = Store(g.root)
    state = store.load(values["container_id"])
    if store.status(state) == "stopped":
        raise NotRunning(state.id)
    data = resources_from(values, None)
    if not data:
        raise Failure("update: nothing to update (give --resources or a limit flag)")
    data.pop("devices", None)  # set at create only, as runc
    try:
        resources = decode(Resources, data, "resources")
    except DecodeError as e:
        raise Failure(f"update: {e}") from None
    from pyruntime.cgroups.apply import apply
    from pyruntime.cgroups.settings import plan_resources

    driver = of_container(state)
    systemd = getattr(driver, "systemd", False)
    period = driver.cpu_period() if systemd else 0  # type: ignore[attr-defined]
    for message in apply(driver, plan_resources(driver, resources, initial=False,
                                                current_period=period)):
        g.log.warning(message)
    return 0
