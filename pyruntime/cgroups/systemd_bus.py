"""Talking to systemd (org.freedesktop.systemd1) over the system bus, with jeepney.

jeepney is pure Python with blocking I/O; importing it costs ~10 ms (enum, socket), so
only this module imports it, and only the systemd driver imports this module: nothing
without --systemd-cgroup pays for it. Every failure is a Failure naming the call.
"""

from __future__ import annotations

import os
from collections import deque

from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

from pyruntime.errors import Failure

MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")
JOB_TIMEOUT = 30.0  # s, as runc waits for a unit's start or stop job
CALL_TIMEOUT = 30.0
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"
SYSTEM_BUS = "/run/dbus/system_bus_socket"


class BusError(Failure):
    """A D-Bus error reply: `name` is the error's name (org.freedesktop.systemd1.*)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class Systemd:
    """One connection to the system bus, subscribed to the manager's job signals."""

    def __init__(self) -> None:
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + SYSTEM_BUS)
        try:
            self.conn = open_dbus_connection(bus="SYSTEM", auth_timeout=CALL_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as e:
            raise Failure(f"--systemd-cgroup: systemd is not reachable: connect to the system "
                          f"bus ({address}): {getattr(e, 'strerror', None) or e}") from None
        self._jobs: deque = deque()
        # the bus matches the sender by its well-known name; the local filter cannot
        # (signals carry the unique name), so it leaves the sender out
        mine = dict(type="signal", interface=MANAGER.interface, member="JobRemoved",
                    path=MANAGER.object_path)
        self._filter = self.conn.filter(MatchRule(**mine), queue=self._jobs)
        self._filter.__enter__()
        rule = MatchRule(sender=MANAGER.bus_name, **mine)
        self._call(message_bus.AddMatch(rule), "AddMatch")
        self._call(new_method_call(MANAGER, "Subscribe"), "Subscribe")

    def close(self) -> None:
        self._filter.__exit__(None, None, None)
        self.conn.close()

    def _call(self, msg: object, what: str) -> tuple:
        try:
            reply = self.conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise Failure(f"systemd: {what}: {getattr(e, 'strerror', None) or e}") from None
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            text = reply.body[0] if reply.body else name
            raise BusError(f"systemd: {what}: {text}", name)
        return reply.body

    def version(self) -> int:
        """systemd's version number: 252 for "252.38-1~deb12u1"."""
        msg = new_method_call(
            DBusAddress(MANAGER.object_path, MANAGER.bus_name, "org.freedesktop.DBus.Properties"),
            "Get", "ss", (MANAGER.interface, "Version"))
        _sig, text = self._call(msg, "get Version")[0]
        digits = ""
        for c in str(text).lstrip("v"):
            if not c.isdigit():
                break
            digits += c
        return int(digits) if digits else 0

    def _wait_job(self, job: str, what: str) -> str:
        """Wait for the JobRemoved signal of `job`; its result ("done", "failed", ...)."""
        import time

        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            while self._jobs:
                _id, path, _unit, result = self._jobs.popleft().body
                if path == job:
                    return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"systemd: {what}: no answer in {JOB_TIMEOUT:.0f} s")
            try:
                self.conn.recv_messages(timeout=remaining)
            except TimeoutError:
                continue
            except OSError as e:
                raise Failure(f"systemd: {what}: {e.strerror or e}") from None

    def start_transient_unit(self, unit: str, props: list) -> None:
        """StartTransientUnit(unit, "replace", props) and wait for its job, as runc: a
        leftover failed unit of the same name is reset once and the start retried."""
        what = f"start unit {unit}"
        for attempt in (0, 1):
            try:
                (job,) = self._call(new_method_call(
                    MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                    (unit, "replace", props, [])), what)
                break
            except BusError as e:
                if e.name != UNIT_EXISTS or attempt:
                    raise
                self.reset_failed(unit)
        result = self._wait_job(job, what)
        if result != "done":
            self.reset_failed(unit)
            raise Failure(f"systemd: {what}: the job ended '{result}' (journalctl -u {unit})")

    def set_unit_properties(self, unit: str, props: list) -> None:
        if props:
            self._call(new_method_call(MANAGER, "SetUnitProperties", "sba(sv)",
                                       (unit, True, props)), f"set properties of {unit}")

    def stop_unit(self, unit: str) -> None:
        """StopUnit and wait; a unit that is gone already is fine (systemd drops an
        empty scope by itself). Then reset-failed, so the name can be used again."""
        what = f"stop unit {unit}"
        try:
            (job,) = self._call(new_method_call(MANAGER, "StopUnit", "ss",
                                                (unit, "replace")), what)
        except BusError as e:
            if e.name != NO_SUCH_UNIT:
                raise
        else:
            self._wait_job(job, what)
        self.reset_failed(unit)

    def reset_failed(self, unit: str) -> None:
        try:
            self._call(new_method_call(MANAGER, "ResetFailedUnit", "s", (unit,)),
                       f"reset-failed {unit}")
        except BusError:
            pass
