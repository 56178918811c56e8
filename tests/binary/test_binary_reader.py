"""The one byte reader (lumos/binary/reader.py) and what becomes "corrupt file".

A damaged file must fail where its bytes are read, with a BinaryFormatError (its
DWARF and Go subclasses) naming the offset; a lumos bug (IndexError, KeyError,
TypeError...) must surface as itself, never as "corrupt or truncated file". And a
truncated ELF ends in one line and exit code 2 from every tool, never a traceback.
"""

from __future__ import annotations

import pytest
from conftest import run_lumos
from support.gobuild import build

from lumos.binary import reader
from lumos.errors import (
    BinaryFormatError,
    DwarfFormatError,
    GoBinaryError,
    GoFormatError,
    LumosError,
)
from lumos.golang import dwarfloc, pclntab
from lumos.golang.dwarfdie import DwarfInfo
from lumos.golang.gobinary import open_go_binary


@pytest.mark.parametrize("data, value", [
    (b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xe5\x8e\x26", 624485),
    (b"\xff" * 9 + b"\x01", (1 << 64) - 1)])
def test_uleb128_and_uvarint(data, value):
    assert reader.uleb128(data + b"tail", 0) == (value, len(data))
    assert reader.uvarint(data, 0) == (value, len(data))


@pytest.mark.parametrize("data, value", [
    (b"\x02", 2), (b"\x7e", -2), (b"\xff\x00", 127), (b"\x81\x7f", -127),
    (b"\x80\x7f", -128), (b"\xc0\xbb\x78", -123456)])
def test_sleb128(data, value):
    assert reader.sleb128(data, 0) == (value, len(data))


@pytest.mark.parametrize("call", [
    lambda: reader.uleb128(b"\x80\x80", 0),
    lambda: reader.uleb128(b"\x80" * 11, 0),
    lambda: reader.sleb128(b"", 0),
    lambda: reader.uvarint(b"\xff" * 9 + b"\x7f", 0),      # 70 bits: overflows 64
    lambda: reader.uint(b"\x01\x02\x03", 0, 4),
    lambda: reader.uint(b"\x01", -1, 1),
    lambda: reader.take(b"abc", 2, 2),
    lambda: reader.cstring(b"abc", 0),
    lambda: reader.cstring(b"abc\0", 9),
    lambda: reader.Reader(b"\x01\x02").u32(),
])
def test_every_short_read_is_a_format_error_with_its_offset(call):
    with pytest.raises(BinaryFormatError, match=r"at offset -?0x[0-9a-f]+"):
        call()


def test_reader_cursor():
    r = reader.Reader(b"\x01\x02\x00\x80\x01abc", what="thing", exc=DwarfFormatError)
    assert (r.u8(), r.u16(), r.uleb(), r.bytes(3)) == (1, 2, 128, b"abc")
    assert r.at_end
    with pytest.raises(DwarfFormatError, match="thing runs off the end"):
        r.u8()


def test_the_errors_say_what_they_are():
    assert issubclass(DwarfFormatError, BinaryFormatError)
    assert issubclass(GoFormatError, BinaryFormatError) and issubclass(GoFormatError,
                                                                       GoBinaryError)
    assert issubclass(BinaryFormatError, LumosError)


def test_dwarf_and_go_readers_raise_their_format_errors():
    with pytest.raises(DwarfFormatError):
        dwarfloc.decode_expr(b"\x90")                          # DW_OP_regx, no operand
    with pytest.raises(DwarfFormatError):
        dwarfloc.loclist_v4(b"\x00" * 10, 0, 0)                # a pair cut short
    with pytest.raises(DwarfFormatError):
        DwarfInfo(b"\x20\x00\x00\x00\x04\x00", b"").die_at(0)  # unit header cut short
    with pytest.raises(GoFormatError):
        pclntab._uvarint(b"\x80", 0)


def test_a_lumos_bug_is_not_reported_as_a_corrupt_file(monkeypatch):
    """An IndexError inside the parsers is a bug: it must come out as itself."""
    exe = str(build("truth", "1.23.9", "default"))

    def broken(self, *a, **kw):
        raise IndexError("a lumos bug")

    monkeypatch.setattr(pclntab.PcLnTab, "info", broken)
    with open_go_binary(exe, use_cache=False) as gb:
        fn = gb.get_functions("main.Ints")[0]
        with pytest.raises(IndexError, match="a lumos bug"):
            gb.spec(fn)


@pytest.mark.parametrize("tool", [["trace"], ["funcs"], ["trace", "--ret"], ["flow"],
                                  ["latency"], ["funccount"]])
def test_truncated_elf_is_one_line_and_exit_2(tmp_path, tool):
    """The first 300 KB of a Go binary: the section table is past the end. pyelftools
    fails reading it (ELFParseError: expected 4, found 0); lumos says so in one line."""
    exe = build("truth", "1.19", "default")
    cut = tmp_path / "truncated"
    cut.write_bytes(exe.read_bytes()[:300_000])
    cut.chmod(0o755)
    r = run_lumos(*tool, str(cut), "main.*")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "truncated" in lines[0] and str(cut) in lines[0], lines[0]
