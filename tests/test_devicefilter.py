"""The cgroup v2 device filter (pyruntime/cgroups/devicefilter.py): the assembler's encoding
and jumps, the program's decisions (run by a small interpreter here, no kernel), and, as
root, the kernel enforcing it on a test child in a cgroup2 directory of our own (a hybrid
host's /sys/fs/cgroup/unified will do: device programs attach there too).
"""

from __future__ import annotations

import os
import struct
import subprocess

import pytest

from pyruntime.cgroups import devicefilter as df
from pyruntime.cgroups.detect import UNIFIED, host
from pyruntime.cgroups.resources import DeviceEntry, device_entries
from pyruntime.spec.model import Resources
from pyruntime.spec.record import decode

# on a unified host (the v2 lane) the kernel tests are cgroupv2 tests too
in_v2_lane = pytest.mark.cgroupv2 if host().mode == UNIFIED else (lambda f: f)
R, W, M = df.BPF_DEVCG_ACC_READ, df.BPF_DEVCG_ACC_WRITE, df.BPF_DEVCG_ACC_MKNOD
CHAR, BLOCK = df.BPF_DEVCG_DEV_CHAR, df.BPF_DEVCG_DEV_BLOCK


def entries(*rules: dict, defaults: bool = False) -> list[DeviceEntry]:
    res = decode(Resources, {"devices": list(rules)}, "linux.resources")
    return device_entries(res.devices, defaults=defaults)


def run(code: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """Interpret the subset of eBPF the filter uses, on one bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", access << 16 | kind, major, minor)
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    reg = [0] * 11
    reg[1] = "ctx"
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps <= len(insns), "a loop"
        op, regs, off, imm = insns[pc]
        dst, src = regs & 0xF, regs >> 4
        pc += 1
        if op == 0x61:  # ldxw dst, [src + off]
            assert reg[src] == "ctx"
            reg[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            reg[dst] = reg[dst] & imm & 0xFFFFFFFF
        elif op == 0x74:
            reg[dst] = (reg[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xBC:
            reg[dst] = reg[src] & 0xFFFFFFFF
        elif op == 0xB4:
            reg[dst] = imm & 0xFFFFFFFF
        elif op in (0x55, 0x5D, 0x15):
            other = imm if op != 0x5D else reg[src]
            if (reg[dst] != other) == (op != 0x15):
                pc += off
        elif op == 0x95:
            return reg[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def decide(rules: list[DeviceEntry], kind: int, access: int, major: int, minor: int) -> int:
    return run(df.compile_rules(rules), kind, access, major, minor)


# -- the assembler ----------------------------------------------------------------------------

def test_instruction_encoding() -> None:
    assert df.load_word(df.R4, df.R1, 4).encode() == bytes([0x61, 0x14, 4, 0, 0, 0, 0, 0])
    assert df.alu32_imm(df._AND, df.R2, 0xFFFF).encode() == bytes.fromhex("54020000ffff0000")
    assert df.alu32_imm(df._RSH, df.R3, 16).encode() == bytes.fromhex("7403000010000000")
    assert df.mov32_reg(df.R1, df.R3).encode() == bytes.fromhex("bc31000000000000")
    assert df.alu32_imm(df._MOV, df.R0, 1).encode() == bytes.fromhex("b400000001000000")
    assert df.exit_insn().encode() == bytes.fromhex("9500000000000000")
    jne = df.jump_imm(df._JNE, df.R4, 136, "x")
    jne.off = 3
    assert jne.encode() == bytes.fromhex("5504030088000000")
    assert df.jump_reg(df._JNE, df.R1, df.R3, "x").encode()[:2] == bytes([0x5D, 0x31])
    assert df.jump_imm(df._JEQ, df.R1, 0, "x").encode()[:2] == bytes([0x15, 0x01])


def test_jump_offsets_count_from_the_next_instruction() -> None:
    code = df.assemble([
        df.jump_imm(df._JNE, df.R2, 2, "b"),      # 0 -> 3: off 2
        df.jump_imm(df._JNE, df.R3, 1, "end"),    # 1 -> 4: off 2
        "a",
        df.exit_insn(),                            # 2
        "b",
        df.exit_insn(),                            # 3
        "end",
        df.exit_insn(),                            # 4
    ])
    assert len(code) == 5 * 8
    assert struct.unpack_from("<h", code, 2)[0] == 2
    assert struct.unpack_from("<h", code, 8 + 2)[0] == 2


@pytest.mark.parametrize("items", [
    [df.jump_imm(df._JNE, df.R2, 2, "nowhere"), df.exit_insn()],
    ["a", df.exit_insn(), "a", df.exit_insn()],
    [df.exit_insn(), "back", df.jump_imm(df._JNE, df.R2, 2, "back"), df.exit_insn()],
])
def test_assembler_refuses_bad_labels(items: list) -> None:
    with pytest.raises(ValueError):
        df.assemble(items)


# -- the program ------------------------------------------------------------------------------

def test_program_shape() -> None:
    """The context loads, one block per rule after the deny-all, the default last."""
    code = df.compile_rules(entries({"allow": False, "access": "rwm"},
                                    {"allow": True, "type": "c", "major": 1, "minor": 3}))
    ops = [code[i] for i in range(0, len(code), 8)]
    # ld type, and, ld access, rsh, ld major, ld minor | jne type, jne major, jne minor,
    # r0 = 1, exit | r0 = 0, exit
    assert ops == [0x61, 0x54, 0x61, 0x74, 0x61, 0x61, 0x55, 0x55, 0x55, 0xB4, 0x95, 0xB4, 0x95]
    assert len(code) % 8 == 0


def test_deny_all_then_runc_defaults() -> None:
    rules = entries({"allow": False, "access": "rwm"}, defaults=True)
    assert decide(rules, CHAR, R | W, 1, 3) == 1          # /dev/null
    assert decide(rules, CHAR, W, 136, 7) == 1            # a pty
    assert decide(rules, CHAR, W, 1, 11) == 0             # /dev/kmsg
    assert decide(rules, BLOCK, R, 8, 0) == 0             # a disk
    assert decide(rules, BLOCK, M, 8, 0) == 1             # b *:* m
    assert decide(rules, CHAR, M, 4, 1) == 1              # c *:* m
    assert decide(rules, CHAR, R | M, 4, 1) == 0          # m alone is allowed, not rm


def test_without_a_wildcard_the_default_is_deny() -> None:
    rules = entries({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"})
    assert decide(rules, CHAR, R, 1, 3) == 1
    assert decide(rules, CHAR, R, 1, 5) == 0
    assert decide(rules, BLOCK, R, 1, 3) == 0


def test_allow_all_then_a_deny() -> None:
    rules = entries({"allow": True, "access": "rwm"},
                    {"allow": False, "type": "b", "major": 8, "access": "w"})
    assert decide(rules, BLOCK, R, 8, 1) == 1
    assert decide(rules, BLOCK, W, 8, 1) == 0
    assert decide(rules, BLOCK, R | W, 8, 1) == 0         # a deny matches any of its access
    assert decide(rules, CHAR, W, 8, 1) == 1
    assert decide(rules, BLOCK, W, 9, 1) == 1


def test_the_last_matching_rule_wins() -> None:
    rules = entries({"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "access": "rwm"},
                    {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"})
    assert decide(rules, CHAR, W, 1, 3) == 1
    assert decide(rules, CHAR, W, 1, 11) == 0
    assert decide(rules, CHAR, R, 1, 11) == 1             # the last rule
    assert decide(rules, CHAR, R | W, 1, 11) == 0         # r allows r only, then the deny


def test_an_allow_needs_every_access_asked_for() -> None:
    rules = entries({"allow": False, "access": "rwm"},
                    {"allow": True, "type": "a", "major": 5, "minor": 0, "access": "rw"})
    assert decide(rules, CHAR, R | W, 5, 0) == 1
    assert decide(rules, BLOCK, R, 5, 0) == 1             # type a: both kinds
    assert decide(rules, CHAR, M, 5, 0) == 0
    assert decide(rules, CHAR, R | M, 5, 0) == 0


def test_rules_before_the_last_wildcard_are_dropped() -> None:
    rules = entries({"allow": True, "type": "c", "major": 1, "minor": 11},
                    {"allow": False, "access": "rwm"},
                    {"allow": False, "type": "c", "major": 1, "minor": 12})
    code = df.compile_rules(rules)
    assert len(code) == (6 + 2) * 8  # the loads and the default: nothing could decide else
    assert decide(rules, CHAR, W, 1, 11) == 0
    allow_all = df.compile_rules(entries({"allow": True, "access": "rwm"}))
    assert run(allow_all, BLOCK, R | W | M, 8, 0) == 1


# -- the kernel (root) ------------------------------------------------------------------------

def _cgroup2_dir(name: str) -> str:
    h = host().v2
    if h is None:
        pytest.skip("no cgroup2 hierarchy on this host")
    return os.path.join(h.dir_of(h.own), name)


SCRIPT = ("read go; for d in null kmsg; do if printf '' > /dev/$d; then echo $d=ok; "
          "else echo $d=denied; fi; done 2>/dev/null")


def _in_cgroup(directory: str) -> str:
    """Start `sh`, move it into the cgroup, let it open the devices; its report."""
    proc = subprocess.Popen(["sh", "-c", SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        with open(os.path.join(directory, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        out, _ = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


@pytest.mark.root
@in_v2_lane
def test_kernel_enforces_the_filter_and_replaces_it(test_token: str) -> None:
    from pyruntime._native import lib

    directory = _cgroup2_dir(f"pyrt-test-{test_token}-bpf")
    os.mkdir(directory)
    try:
        deny_all = {"allow": False, "access": "rwm"}
        df.attach_code(directory, df.compile_rules(entries(deny_all, defaults=True)))
        assert _in_cgroup(directory).split() == ["null=ok", "kmsg=denied"]
        # again, with /dev/kmsg allowed for writing: the old program goes
        df.attach_code(directory, df.compile_rules(entries(
            deny_all, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"},
            defaults=True)))
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert lib.pyrt_device_filter_count(fd) == 1
        finally:
            os.close(fd)
        assert _in_cgroup(directory).split() == ["null=ok", "kmsg=ok"]
    finally:
        os.rmdir(directory)


@pytest.mark.root
@in_v2_lane
def test_a_refused_program_names_the_verifier(test_token: str) -> None:
    from pyruntime.errors import Failure

    directory = _cgroup2_dir(f"pyrt-test-{test_token}-bad")
    os.mkdir(directory)
    try:
        with pytest.raises(Failure, match="device filter") as e:
            # r0 is never set: the verifier refuses to read it at exit
            df.attach_code(directory, df.assemble([df.exit_insn()]))
        assert "R0" in str(e.value), e.value
    finally:
        os.rmdir(directory)

