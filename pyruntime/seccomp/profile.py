"""linux.seccomp -> the compile input for native/seccomp.c, and the load flags.

Every decision about a profile is made here, without root or libseccomp:
- actions become libseccomp's SCMP_ACT_* numbers with their data; `errnoRet` is allowed
  only with SCMP_ACT_ERRNO and SCMP_ACT_TRACE and defaults to EPERM (runtime-spec);
- each name of a `syscalls[]` entry is one rule; its `args` are AND-ed in that rule,
  unless an argument index repeats, then every condition is a rule of its own (OR), which
  is what runc does;
- a rule whose action is the default action is left out (libseccomp refuses it);
- flags map to SECCOMP_FILTER_FLAG_*; NOTIFY adds NEW_LISTENER (and needs listenerPath).
"""

from __future__ import annotations

import errno

from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.spec.model import Seccomp

# SCMP_ACT_* (seccomp.h); ERRNO and TRACE carry 16 bits of data
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000

ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
WITH_DATA = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = {  # enum scmp_compare
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)

FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

SENDS_LISTENER = ("sendmsg", "sendto")  # what the init calls after loading
OPTIMIZE_ABOVE = 400  # rules; runc turns on libseccomp's binary tree from there


class Rule:
    """One seccomp_rule_add: a syscall name, an action value, AND-ed conditions."""

    __slots__ = ("name", "action", "args", "where")

    def __init__(self, name: str, action: int, args: list[tuple[int, int, int, int]],
                 where: str) -> None:
        self.name = name
        self.action = action
        self.args = args  # (index, op, value, value_two)
        self.where = where  # config.json path, for messages

    def key(self) -> list:
        return [self.name, self.action, [list(a) for a in self.args]]


class Profile:
    """What native/seccomp.c compiles, plus what the init needs to load it."""

    def __init__(self) -> None:
        self.default_action = ACT_ALLOW
        self.archs: list[str] = []  # libseccomp names: "x86_64"
        self.rules: list[Rule] = []
        self.flags = 0  # SECCOMP_FILTER_FLAG_* for seccomp(2)
        self.listener_path: str | None = None
        self.listener_metadata: str | None = None
        self.dropped_flags: list[str] = []  # accepted but meaningless here (for the debug log)

    @property
    def optimize(self) -> bool:
        return len(self.rules) > OPTIMIZE_ABOVE

    @property
    def notify(self) -> bool:
        return bool(self.flags & FLAG_NEW_LISTENER)

    def compile_key(self) -> dict:
        """Everything that shapes the BPF (not the load flags): the cache key's input."""
        return {
            "default": self.default_action,
            "archs": self.archs,
            "optimize": self.optimize,
            "rules": [r.key() for r in self.rules],
        }


def _fail(where: str, problem: str) -> Failure:
    return Failure(f"config.json: linux.seccomp{where}: {problem}")


def _action(name: str, errno_ret: int | None, where: str) -> int:
    value = ACTIONS.get(name)
    if value is None:
        raise _fail(f"{where}.action" if where else ".defaultAction",
                    f"unknown action {name!r}")
    if name in WITH_DATA:
        return value | (errno.EPERM if errno_ret is None else errno_ret)  # 16 bits: model.py
    if errno_ret is not None:
        raise _fail(f"{where}.errnoRet" if where else ".defaultErrnoRet",
                    f"{name} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")
    return value


def _conditions(args: list, where: str) -> list[list[tuple[int, int, int, int]]]:
    """The condition sets of one syscall entry: one AND-ed set, or (a repeated index) one
    set per condition, OR-ed."""
    conds = []
    seen: dict[int, int] = {}
    for j, a in enumerate(args):
        op = OPERATORS.get(a.op)
        if op is None:
            raise _fail(f"{where}.args[{j}].op", f"unknown operator {a.op!r}")
        conds.append((a.index, op, a.value, a.value_two))
        seen[a.index] = seen.get(a.index, 0) + 1
    if not conds:
        return [[]]
    if any(n > 1 for n in seen.values()):
        return [[c] for c in conds]
    return [conds]


def build_profile(sc: Seccomp) -> Profile:
    """Translate a decoded linux.seccomp; raise Failure naming the field that is wrong."""
    prof = Profile()
    prof.default_action = _action(sc.default_action, sc.default_errno_ret, "")
    for i, arch in enumerate(sc.architectures):
        if arch not in ARCHITECTURES:
            raise _fail(f".architectures[{i}]", f"unknown architecture {arch!r}")
        name = arch[len("SCMP_ARCH_"):].lower()
        if name not in prof.archs:
            prof.archs.append(name)
    for i, flag in enumerate(sc.flags):
        bit = FLAGS.get(flag)
        if bit is None:
            raise _fail(f".flags[{i}]", f"unknown flag {flag!r}")
        prof.flags |= bit
    uses_notify = sc.default_action == "SCMP_ACT_NOTIFY"
    for i, call in enumerate(sc.syscalls):
        where = f".syscalls[{i}]"
        if not call.names:
            raise _fail(f"{where}.names", "must name at least one syscall")
        action = _action(call.action, call.errno_ret, where)
        if call.action == "SCMP_ACT_NOTIFY":
            uses_notify = True
            for j, name in enumerate(call.names):
                if name in SENDS_LISTENER:
                    # init sends the listener fd with it after loading: it would wait on itself
                    raise _fail(f"{where}.names[{j}]",
                                f"SCMP_ACT_NOTIFY cannot be used for {name}")
        condition_sets = _conditions(call.args, where)
        if action == prof.default_action:
            continue  # libseccomp refuses a rule that repeats the default; it changes nothing
        for j, name in enumerate(call.names):
            for conds in condition_sets:
                prof.rules.append(Rule(name, action, conds, f"{where}.names[{j}]"))
    if uses_notify:
        if sc.default_action == "SCMP_ACT_NOTIFY":
            # the init's own syscalls up to execve would wait on an agent that has no fd yet
            raise _fail(".defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
        if not sc.listener_path:
            raise _fail(".listenerPath", "required when an action is SCMP_ACT_NOTIFY")
        if not sc.listener_path.startswith("/"):
            raise _fail(".listenerPath", f"must be an absolute path: {sc.listener_path!r}")
        prof.flags |= FLAG_NEW_LISTENER
        if prof.flags & FLAG_TSYNC:
            prof.flags |= FLAG_TSYNC_ESRCH  # the kernel refuses TSYNC with a listener otherwise
        prof.listener_path = sc.listener_path
        prof.listener_metadata = sc.listener_metadata
    else:
        if sc.listener_metadata and not sc.listener_path:
            raise _fail(".listenerMetadata", "must not be set without listenerPath")
        if prof.flags & FLAG_WAIT_KILLABLE_RECV:
            # the kernel accepts it only with a listener; without one it has no meaning
            prof.flags &= ~FLAG_WAIT_KILLABLE_RECV
            prof.dropped_flags.append("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
    return prof
