"""Fuzzing the pclntab and ELF readers with mutated real binaries (hypothesis): every
outcome is a result or a LumosError (GoBinaryError, BinaryFormatError), never another
exception, and every example finishes within its deadline (no hangs)."""

from __future__ import annotations

import contextlib
import subprocess
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.gobuild import build

from lumos.binary.elf import ElfBinary
from lumos.errors import LumosError
from lumos.golang.gobinary import open_go_binary
from lumos.golang.pclntab import PcLnTab

FUZZ = settings(max_examples=120, deadline=5000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@cache
def _pclntab() -> bytes:
    with ElfBinary(str(build("alltypes", "1.27.3", "stripped"))) as elf:
        return elf.get_section_data(".gopclntab")


@cache
def _binary() -> tuple[bytes, int, int]:
    exe = build("alltypes", "1.21.13", "stripped")
    with ElfBinary(str(exe)) as elf:
        _, off, size = elf.get_section_range(".gopclntab")
    return exe.read_bytes(), off, size


def _mutations(limit: int):
    return st.lists(st.tuples(st.integers(0, limit - 1), st.integers(0, 255)),
                    min_size=1, max_size=12)


def _exercise_table(data: bytes) -> None:
    tab = PcLnTab(data, 0x401000)
    funcs = tab.functions
    for f in funcs[:: max(1, len(funcs) // 12)]:
        tab.info(f)
        tab.line_table(f)
        tab.source_of(f)
        tab.sp_delta_at(f, f.entry)
    tab.function_at(0x401234)


@FUZZ
@given(muts=_mutations(4096), cut=st.one_of(st.none(), st.integers(0, 4096)))
def test_pclntab_header_and_functab_mutations(muts, cut):
    data = bytearray(_pclntab())
    for pos, val in muts:
        data[pos] = val
    if cut is not None:
        data = data[:cut]
    with contextlib.suppress(LumosError):
        _exercise_table(bytes(data))


@FUZZ
@given(muts=_mutations(1 << 20))
def test_pclntab_body_mutations(muts):
    data = bytearray(_pclntab())
    for pos, val in muts:
        data[pos % len(data)] = val
    with contextlib.suppress(LumosError):
        _exercise_table(bytes(data))


@FUZZ
@given(region=st.sampled_from(["elf-header", "pclntab", "anywhere"]),
       muts=_mutations(1 << 24), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_elf_mutations(tmp_path_factory, region, muts, cut):
    data, off, size = _binary()
    data = bytearray(data)
    for pos, val in muts:
        if region == "elf-header":
            pos %= 0x1000
        elif region == "pclntab":
            pos = off + pos % size
        else:
            pos %= len(data)
        data[pos] = val
    if cut is not None:
        data = data[:int(len(data) * cut)]
    path = tmp_path_factory.mktemp("fuzz") / "bin"
    path.write_bytes(bytes(data))
    try:
        with open_go_binary(str(path), use_cache=False) as gb:
            funcs = gb.match("main.*")
            for f in funcs[:4]:
                gb.spec(f)
    except LumosError:
        pass


@cache
def _dwarf_binary() -> tuple[bytes, list[tuple[int, int]]]:
    """A Go 1.19 build with its DWARF decompressed (objcopy), so that mutations reach the
    DIE and location-list parsers; spans: .debug_info around package main's functions,
    .debug_loc, .debug_abbrev."""
    exe = build("alltypes", "1.19", "default")
    plain = exe.with_name("alltypes-plain-dwarf")
    if not plain.exists():
        subprocess.run(["objcopy", "--decompress-debug-sections", str(exe), str(plain)],
                       check=True)
    data = plain.read_bytes()
    with ElfBinary(str(plain)) as elf:
        info = elf.get_section_range(".debug_info")[1:]
        spans = [elf.get_section_range(n)[1:] for n in (".debug_loc", ".debug_abbrev")]
    main = data.find(b"main.Ints\0", info[0], info[0] + info[1])
    assert main > 0
    return data, [(main - 1024, 8192), *spans]


@FUZZ
@given(which=st.integers(0, 2), muts=_mutations(1 << 24))
def test_dwarf_mutations(tmp_path_factory, which, muts):
    data, spans = _dwarf_binary()
    data = bytearray(data)
    off, size = spans[which]
    for pos, val in muts:
        data[off + pos % size] = val
    path = tmp_path_factory.mktemp("fuzz") / "bin"
    path.write_bytes(bytes(data))
    with contextlib.suppress(LumosError), open_go_binary(str(path), use_cache=False) as gb:
        for f in gb.match("main.*"):
            gb.spec(f)
