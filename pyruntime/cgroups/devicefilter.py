"""cgroup v2 device control: linux.resources.devices -> a BPF_PROG_TYPE_CGROUP_DEVICE program.

cgroup v2 has no devices.allow/deny files; the kernel instead runs the eBPF programs
attached to the cgroup (and its ancestors) on every device open and mknod, and refuses
with EPERM when one returns 0. This module writes that program as raw instructions
(struct bpf_insn, 8 bytes each); native/bpfdev.c loads and attaches it, mechanism only.

The rules are the ones v1 writes (resources.device_entries: the spec's, then runc's
default allow list), with runc's devicefilter semantics:
  - the LAST rule that matches decides: blocks are emitted in reverse order, each
    returning at once when it matches;
  - a rule for every device with every access ("a *:* rwm") matches everything, so the
    rules before it can never decide: it becomes the default and they are dropped (the
    verifier refuses unreachable instructions too);
  - with no such rule the default is deny (runc's v2 filter is an allow list);
  - an allow rule matches a request whose access is within the rule's ("r" does not
    allow an "rw" open); a deny rule matches a request that asks for any of its access
    ("w" denies an "rw" open), which is how v1's exception lists behave in either mode.

Devices are set at create only: `update` leaves the program as v1 leaves devices.allow
(runc re-attaches the same rules on every update). attach_code() replaces whatever device
programs the directory had, so an update that changes them could call it again.
Not handled: a runtime without CAP_SYS_ADMIN (rootless) cannot load the program; runc
then skips the filter when the rules deny nothing.

The program's context is struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
u32 minor}, access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.resources import DeviceEntry

LICENSE = "Apache"

# include/uapi/linux/bpf.h
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
ALL_ACCESS = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE
TYPE_BITS = {"c": BPF_DEVCG_DEV_CHAR, "b": BPF_DEVCG_DEV_BLOCK}

# -- a tiny eBPF assembler ----------------------------------------------------------------------
# opcode = operation | source | class
_LDX, _ALU, _JMP = 0x01, 0x04, 0x05           # classes (ALU: 32-bit, zero-extends)
_MEM, _W = 0x60, 0x00                          # load mode and size (32-bit word)
_K, _X = 0x00, 0x08                            # source: immediate, register
_AND, _RSH, _MOV = 0x50, 0x70, 0xB0            # ALU operations
_JEQ, _JNE, _EXIT = 0x10, 0x50, 0x90           # JMP operations (64-bit compares)

R0, R1, R2, R3, R4, R5 = range(6)


class Insn:
    """One instruction; `target` (a label) is resolved into `off` by assemble()."""

    __slots__ = ("code", "dst", "src", "off", "imm", "target")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
                 target: str | None = None) -> None:
        self.code, self.dst, self.src, self.off, self.imm = code, dst, src, off, imm
        self.target = target

    def encode(self) -> bytes:
        """struct bpf_insn {u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm}
        (little-endian: dst in the low nibble)."""
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)

    def __repr__(self) -> str:
        return (f"Insn({self.code:#04x}, dst={self.dst}, src={self.src}, off={self.off}, "
                f"imm={self.imm}{', ' + self.target if self.target else ''})")


def load_word(dst: int, src: int, off: int) -> Insn:
    """dst = *(u32 *)(src + off)"""
    return Insn(_LDX | _MEM | _W, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> Insn:
    return Insn(_ALU | op | _K, dst, imm=imm)


def mov32_reg(dst: int, src: int) -> Insn:
    return Insn(_ALU | _MOV | _X, dst, src)


def jump_imm(op: int, dst: int, imm: int, target: str) -> Insn:
    """if (dst <op> imm) goto target"""
    return Insn(_JMP | op | _K, dst, imm=imm, target=target)


def jump_reg(op: int, dst: int, src: int, target: str) -> Insn:
    """if (dst <op> src) goto target"""
    return Insn(_JMP | op | _X, dst, src, target=target)


def exit_insn() -> Insn:
    return Insn(_JMP | _EXIT)


def assemble(items: list[Insn | str]) -> bytes:
    """Instructions and labels (a str marks the next instruction) -> the program's bytes.

    A jump's offset counts from the instruction after it; jumps go forward only (the
    kernel refuses loops in this program type anyway).
    """
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for item in items:
        if isinstance(item, str):
            if item in labels:
                raise ValueError(f"label {item!r} defined twice")
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for pc, insn in enumerate(insns):
        if insn.target is not None:
            if insn.target not in labels:
                raise ValueError(f"jump to an undefined label {insn.target!r}")
            off = labels[insn.target] - pc - 1
            if not 0 <= off <= 0x7FFF:
                raise ValueError(f"jump to {insn.target!r} out of range ({off})")
            insn.off = off
        out.append(insn.encode())
    return b"".join(out)


# -- the device filter ------------------------------------------------------------------------

def _access(access: str) -> int:
    bits = 0
    for c in access:
        bits |= ACCESS_BITS[c]
    return bits


def program(entries: list[DeviceEntry]) -> list[Insn | str]:
    """The filter for `entries` (in the spec's order), as instructions and labels."""
    default = False
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].wildcard:
            default, entries = entries[i].allow, entries[i + 1:]
            break
    while entries and entries[0].allow == default:
        entries = entries[1:]  # decides what the default decides: the last block tried
    # R2 = device type, R3 = requested access, R4 = major, R5 = minor
    out: list[Insn | str] = [
        load_word(R2, R1, 0), alu32_imm(_AND, R2, 0xFFFF),
        load_word(R3, R1, 0), alu32_imm(_RSH, R3, 16),
        load_word(R4, R1, 4),
        load_word(R5, R1, 8),
    ]
    for n, e in enumerate(reversed(entries)):
        nxt = f"rule-{n + 1}"
        if e.type != "a":
            out.append(jump_imm(_JNE, R2, TYPE_BITS[e.type], nxt))
        access = _access(e.access)
        if access != ALL_ACCESS:
            out += [mov32_reg(R1, R3), alu32_imm(_AND, R1, access)]
            if e.allow:  # every access asked for is allowed: (R3 & access) == R3
                out.append(jump_reg(_JNE, R1, R3, nxt))
            else:  # any access asked for is denied: (R3 & access) != 0
                out.append(jump_imm(_JEQ, R1, 0, nxt))
        if e.major >= 0:
            out.append(jump_imm(_JNE, R4, e.major, nxt))
        if e.minor >= 0:
            out.append(jump_imm(_JNE, R5, e.minor, nxt))
        out += [alu32_imm(_MOV, R0, int(e.allow)), exit_insn(), nxt]
    out += [alu32_imm(_MOV, R0, int(default)), exit_insn()]
    return out


def compile_rules(entries: list[DeviceEntry]) -> bytes:
    return assemble(program(entries))


def attach_code(cgroup_dir: str, code: bytes) -> None:
    """Load `code` (compile_rules; a DeviceFilter plan entry carries it) and attach it to
    the cgroup at `cgroup_dir`, replacing the device programs attached there before (the
    new one is in place first)."""
    import os

    from pyruntime._native import ffi, lib
    from pyruntime.errors import Failure

    log = ffi.new("char[]", 16384)
    try:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise Failure(f"cgroup: device filter: open {cgroup_dir}: {e.strerror}") from None
    try:
        rc = lib.pyrt_attach_device_filter(fd, code, len(code), LICENSE.encode(), log,
                                           len(log))
    finally:
        os.close(fd)
    if rc < 0:
        # the verifier's verdict is the last line before its statistics
        detail = [line for line in ffi.string(log).decode(errors="replace").splitlines()
                  if line.strip() and not line.startswith(("processed ", "verification "))]
        raise Failure(f"cgroup: device filter for {cgroup_dir}: {os.strerror(-rc)}"
                      + (f" ({detail[-1]})" if detail else ""))
