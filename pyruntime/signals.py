"""Signal names and numbers as `kill` accepts them: 9, KILL, SIGKILL, RTMIN+3."""

from __future__ import annotations

from pyruntime.errors import Failure

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN = 34
SIGRTMAX = 64


def parse_signal(text: str) -> int:
    """Parse a signal given as a number or a name with or without SIG; raise Failure if not."""
    if not text:
        raise Failure('invalid signal: "" (give a name or number, or leave it out for TERM)')
    if text.isdigit():
        number = int(text)
        if 0 < number <= SIGRTMAX:
            return number
        raise Failure(f"invalid signal: {text}")
    name = text.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value in (("RTMIN", SIGRTMIN), ("RTMAX", SIGRTMAX)):
        if name == base:
            return value
        if name.startswith(base) and name[len(base)] in "+-" and name[len(base) + 1 :].isdigit():
            offset = int(name[len(base) + 1 :]) * (1 if name[len(base)] == "+" else -1)
            if SIGRTMIN <= value + offset <= SIGRTMAX:
                return value + offset
    raise Failure(f"invalid signal: {text}")
