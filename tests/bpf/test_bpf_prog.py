"""Program load and the verifier's verdict, on the real kernel."""

import struct

import pytest

from lumos.bpf import sys as bsys
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
    atomic_add,
    call,
    exit_,
    ja,
    ld_map_fd,
    ldx,
    st,
)
from lumos.bpf.maps import array_spec, create_map
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.cli import main
from lumos.errors import VerifierError


def counter_program(m):
    a = Asm()
    a.emit(st(4, FP, -4, 0), ld_map_fd(R1, m), Mov.reg(R2, FP), Add.imm(R2, -4),
           call(Helper.map_lookup_elem), Jeq.imm(R0, 0, "out"),
           Mov.imm(R1, 1), atomic_add(8, R0, 0, R1))
    a.label("out")
    a.emit(Mov.imm(R0, 0), exit_())
    return ProgramSpec("counter", bsys.BPF_PROG_TYPE_SOCKET_FILTER, tuple(a.finish()))


def test_load_and_run_increments_map():
    with create_map(array_spec("c", 8, 1)) as m, load_program(counter_program(m)) as p:
        p.test_run(data=bytes(64), repeat=25)
        assert struct.unpack("<Q", m.lookup(struct.pack("<I", 0)))[0] == 25
        info = p.info()
        assert info.type == bsys.BPF_PROG_TYPE_SOCKET_FILTER
        assert info.name == b"counter"


def test_verifier_rejection_shows_failing_instruction_and_log():
    bad = ProgramSpec("reads_r2", bsys.BPF_PROG_TYPE_SOCKET_FILTER,
                      (Mov.imm(R0, 0), ldx(8, R0, R2, 0), exit_()))
    with pytest.raises(VerifierError) as info:
        load_program(bad)
    err = info.value
    text = str(err)
    assert text.startswith("load program 'reads_r2': Permission denied")
    assert "R2 !read_ok" in text
    assert "at instruction 1: r0 = *(u64 *)(r2 +0)" in text
    assert "processed" in err.log  # the whole log is kept
    assert ">>    1: r0 = *(u64 *)(r2 +0)" in err.listing


def test_unbounded_program_rejected_with_reason():
    a = Asm()
    a.label("top")
    a.emit(Mov.imm(R0, 0), ja("top"))
    with pytest.raises(VerifierError, match="infinite loop detected"):
        load_program(ProgramSpec("loop", bsys.BPF_PROG_TYPE_SOCKET_FILTER, tuple(a.finish())))


def test_cli_turns_lumos_errors_into_one_line(capsys):
    assert main(["funccount", "/nonexistent/binary", "f"]) == 2
    err = capsys.readouterr().err
    assert err == "lumos funccount: /nonexistent/binary: no such file\n"
