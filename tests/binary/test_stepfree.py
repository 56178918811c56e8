"""binary/stepfree.py: a probe moves to the first emulated instruction on its straight
line only when nothing on the way changes what it reads or lets other code in; and on
real interpreters the eval-loop label sites move (the exact-count tests of uflow and
ucalls then prove the moved sites see every call)."""

from __future__ import annotations

from lumos.binary.disasm import iter_insns, uprobe_emulated
from lumos.binary.elf import open_elf
from lumos.binary.stepfree import emulated_point

BASE = 0x1000
MOV_RAX_RBX20 = bytes.fromhex("488b4320")      # mov rax, [rbx+0x20]
TEST_RAX = bytes.fromhex("4885c0")             # test rax, rax
JE = bytes.fromhex("7405")                     # je +5
STORE_RSP10 = bytes.fromhex("4889442410")      # mov [rsp+0x10], rax
CALL = bytes.fromhex("e800000000")
PAD = bytes.fromhex("90" * 8)


def _point(code: bytes, where="reg", reg="bx", offset=0, barriers=()):
    return emulated_point(code + PAD, BASE, BASE, where, reg, offset, set(barriers))


def test_moves_to_the_jump_when_the_value_survives():
    code = MOV_RAX_RBX20 + TEST_RAX + JE
    assert _point(code) == BASE + 7
    assert _point(code, "mem", "sp", 0x20) == BASE + 7


def test_stays_when_the_value_is_overwritten_or_something_jumps_in():
    code = MOV_RAX_RBX20 + TEST_RAX + JE
    assert _point(code, reg="ax") == BASE                     # mov writes rax
    assert _point(code, barriers=[BASE + 4]) == BASE          # a jump lands on test
    assert _point(STORE_RSP10 + JE, "mem", "sp", 0x10) == BASE   # the slot is written
    assert _point(STORE_RSP10 + JE, "mem", "sp", 0x40) == BASE + 5
    assert _point(CALL + JE) == BASE                          # a call is emulated itself
    assert _point(bytes.fromhex("c3") + JE) == BASE           # a RET leaves the line


def test_debian_python_label_sites_are_emulated_instructions():
    from lumos.binary.cpython import load_interpreter
    interp = load_interpreter("/usr/bin/python3.11")
    moved = [s for s in interp.sites if "+" in s.label]
    assert len(moved) == len(interp.sites) == 5
    with open_elf(interp.path) as elf:
        text = next(sg for sg in elf.segments if sg.offset <= moved[0].offset
                    < sg.offset + sg.filesz)
        for s in moved:
            va = s.offset - text.offset + text.vaddr
            raw = elf.read_vaddr(va, 16)
            insn = next(iter_insns(raw, va, 1))
            assert uprobe_emulated(insn, raw[:insn.size]), (s, insn)
