"""binary/usdt.py: argument specs and .note.stapsdt, against readelf on real builds."""

from __future__ import annotations

import re
import subprocess

import pytest
from support.programs import build_c

from lumos.binary.elf import open_elf
from lumos.binary.usdt import parse_arg, read_probes
from lumos.errors import BinaryFormatError


@pytest.mark.parametrize("spec,kind,size,signed,reg,disp,index,scale", [
    ("-4@%edi", "reg", 4, True, "di", 0, "", 1),
    ("8@%rax", "reg", 8, False, "ax", 0, "", 1),
    ("-1@%bpl", "reg", 1, True, "bp", 0, "", 1),
    ("-2@%r12w", "reg", 2, True, "r12", 0, "", 1),
    ("8@(%rax)", "mem", 8, False, "ax", 0, "", 1),
    ("8@-16(%rbp)", "mem", 8, False, "bp", -16, "", 1),
    ("-4@8(%rsi,%r14,4)", "mem", 4, True, "si", 8, "r14", 4),
    ("4@(,%rax,8)", "mem", 4, False, "", 0, "ax", 8),
    ("4@$5", "const", 4, False, "", 5, "", 1),
    ("-4@$-3", "const", 4, True, "", -3, "", 1),
    ("8@counter(%rip)", "mem", 8, False, "ip", 0, "", 1),
    ("-4@12+table(%rip)", "mem", 4, True, "ip", 12, "", 1),
    ("8@foo-8(%rip)", "mem", 8, False, "ip", -8, "", 1),
    ("8@%xmm1", "unreadable", 8, False, "", 0, "", 1),
])
def test_arg_specs(spec, kind, size, signed, reg, disp, index, scale):
    a = parse_arg(spec)
    assert (a.kind, a.size, a.signed, a.reg, a.disp, a.index, a.scale) == \
        (kind, size, signed, reg, disp, index, scale)


def test_high_byte_register():
    a = parse_arg("1@%ah")
    assert (a.reg, a.shift) == ("ax", 8)


@pytest.mark.parametrize("bad", ["3@%eax", "8@%foo", "8@(%rax", "x", "4@$z", "8@()",
                                 "8@(,%rip,2)", "8@foo+bar(%rip)", "8@-foo(%rip)",
                                 "8@1 2(%rax)", "16@%rax"])
def test_malformed_specs_raise(bad):
    with pytest.raises(BinaryFormatError):
        parse_arg(bad)


def _readelf(path: str) -> list[tuple[str, str, int, int, str]]:
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    notes = []
    for m in re.finditer(r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), "
                         r"Base: 0x[0-9a-f]+, Semaphore: (0x[0-9a-f]+)\s+Arguments: ?(.*)", out):
        notes.append((m[1], m[2], int(m[3], 16), int(m[4], 16), m[5].strip()))
    return notes


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_notes_equal_readelf_on_the_test_program(opt):
    path = build_c("usdt", (opt,))
    with open_elf(path) as elf:
        probes = read_probes(elf)
    got = [(p.provider, p.name, p.pc, p.semaphore, p.arg_text) for p in probes]
    assert sorted(got) == sorted(_readelf(path))
    names = {p.name: p for p in probes}
    assert names["tick"].semaphore and names["words"].semaphore
    assert not names["plain"].semaphore
    for p in probes:  # non-PIE-biased file offsets: inside the file, at the NOP
        with open_elf(path) as elf:
            assert elf.read_offset(p.offset, 1) == b"\x90"


def test_o2_build_has_every_spec_form():
    with open_elf(build_c("usdt", ("-O2",))) as elf:
        specs = [a for p in read_probes(elf) for a in p.args]
    kinds = {(a.kind, bool(a.index), a.reg == "ip") for a in specs}
    assert {("reg", False, False), ("mem", False, False), ("mem", True, False),
            ("const", False, False), ("mem", False, True)} <= kinds


def test_debian_python_probes_with_semaphores():
    with open_elf("/usr/bin/python3.11") as elf:
        probes = read_probes(elf)
    got = {(p.provider, p.name, p.pc, p.semaphore, p.arg_text) for p in probes}
    assert got == set(_readelf("/usr/bin/python3.11"))
    entry = next(p for p in probes if p.name == "function__entry")
    assert entry.semaphore and entry.semaphore_offset
    assert [a.type_name for a in entry.args] == ["u64", "u64", "s32"]


def test_truncated_note_is_a_format_error(tmp_path):
    src = build_c("usdt", ("-O2",))
    with open(src, "rb") as f:
        data = bytearray(f.read())
    with open_elf(src) as elf:
        _, off, size = elf.get_section_range(".note.stapsdt")
    data[off + 12: off + size] = b"\xff" * (size - 12)   # names and args lose their NULs
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    with pytest.raises(BinaryFormatError), open_elf(str(bad)) as elf:
        read_probes(elf)
