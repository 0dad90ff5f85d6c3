"""What /proc says about a process: alive or not, and its start time (to detect pid reuse)."""

from __future__ import annotations


def stat_fields(pid: int) -> tuple[str, int] | None:
    """Return (state letter, start time in clock ticks) of `pid`, or None if it is gone.

    The start time is field 22 of /proc/PID/stat; together with the pid it names one
    process for the machine's uptime, so a reused pid is never mistaken for the init.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and ')' - split after the last ')'
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[19])


def is_alive(pid: int, start_time: int) -> bool:
    """True if `pid` is still the process that started at `start_time` and has not exited."""
    fields = stat_fields(pid)
    return fields is not None and fields[1] == start_time and fields[0] not in ("Z", "X")
