"""The assembler: encoding, labels, the two-slot 64-bit load, errors, listings."""

import struct

import pytest

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    Add,
    Asm,
    Helper,
    Jeq,
    Mov,
    call,
    encode,
    exit_,
    format_insns,
    ja,
    ld_imm64,
    ld_map_fd,
    ldx,
    st,
)
from lumos.errors import AsmError


def decode(code: bytes):
    return [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]


def test_mov_and_exit_encode_like_the_kernel():
    code = encode([Mov.imm(R0, 7), exit_()])
    assert decode(code) == [(0xB7, 0x00, 0, 7), (0x95, 0, 0, 0)]


def test_jump_offsets_count_wide_loads_as_two_slots():
    a = Asm()
    a.emit(Jeq.imm(R1, 0, "out"), ld_imm64(R2, 1 << 40), Mov.imm(R0, 1))
    a.label("out")
    a.emit(exit_())
    rows = decode(encode(a.finish()))
    assert len(rows) == 5
    assert rows[0][2] == 3  # skip lddw (2 slots) + mov
    assert rows[1][3] == 0 and rows[2][3] == 1 << 8  # low and high halves


def test_backward_jump():
    a = Asm()
    a.label("top")
    a.emit(Add.imm(R0, 1), ja("top"))
    assert decode(encode(a.finish()))[1][2] == -2


def test_unknown_and_duplicate_labels_name_the_instruction():
    with pytest.raises(AsmError, match="instruction 0: jump to unknown label 'nope'"):
        encode([ja("nope")])
    with pytest.raises(AsmError, match="instruction 1: duplicate label 'x'"):
        encode([exit_().labelled("x"), exit_().labelled("x")])


def test_immediates_out_of_range_are_refused():
    with pytest.raises(AsmError):
        Mov.imm(R0, 1 << 33)
    with pytest.raises(AsmError):
        ldx(8, R0, R1, 1 << 16)


def test_map_fd_is_read_at_encode_time():
    class FakeMap:  # anything with .fd and .name: the assembler does not know maps
        fd = 42
        name = "m"

    code = encode([ld_map_fd(R1, FakeMap())])
    assert decode(code)[0] == (0x18, 0x11, 0, 42)


def test_listing_is_readable():
    text = format_insns([st(4, FP, -4, 0), call(Helper.map_lookup_elem),
                         Jeq.imm(R0, 0, "out"), Mov.imm(R0, 0).labelled("out"), exit_()])
    assert "*(u32 *)(r10 -4) = 0" in text
    assert "call map_lookup_elem" in text
    assert "if r0 == 0 goto out" in text
    assert "out:" in text
