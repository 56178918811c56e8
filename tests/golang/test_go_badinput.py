"""Bad input: each case ends in one line on stderr and exit code 2 (or a one-line notice
and a normal result), never a traceback or a hang."""

from __future__ import annotations

import shutil
import struct

import pytest
from conftest import run_lumos
from support.gobuild import build
from support.gofixtures import isolated_cache  # noqa: F401

from lumos.binary.elf import ElfBinary
from lumos.errors import BinaryFormatError, GoBinaryError, LumosError, TargetError
from lumos.golang.gobinary import NO_DWARF_NOTICE, open_go_binary

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _fails_cleanly(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.strip().splitlines() if not x.startswith("lumos funcs: note:")]
    assert len(lines) == 1 and lines[0].startswith("lumos funcs: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0]


def test_not_a_go_program():
    with pytest.raises(GoBinaryError, match="not a Go program"):
        open_go_binary("/usr/bin/true")
    _fails_cleanly(run_lumos("funcs", "/usr/bin/true"), "not a Go program")


def test_not_elf_missing_directory(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    _fails_cleanly(run_lumos("funcs", str(text)), "not an ELF file")
    _fails_cleanly(run_lumos("funcs", str(tmp_path / "nope")), "no such file")
    _fails_cleanly(run_lumos("funcs", str(tmp_path)), "is a directory")
    _fails_cleanly(run_lumos("funcs"), "TARGET")
    _fails_cleanly(run_lumos("funcs", "-p", "999999999"), "PID")


def test_pattern_matches_nothing():
    exe = build("alltypes", "1.27.3", "default")
    _fails_cleanly(run_lumos("funcs", str(exe), "main.NoSuchThing*"), "no function matches")
    r = run_lumos("funcs", str(exe), "main.Leff")
    _fails_cleanly(r, "did you mean main.Leaf")


def test_no_dwarf_is_a_notice():
    exe = build("alltypes", "1.21.13", "stripped")
    gb = open_go_binary(str(exe), use_cache=False)
    assert gb.notices == [NO_DWARF_NOTICE]
    r = run_lumos("funcs", str(exe), "main.prepareAnswer")
    assert r.returncode == 0
    assert r.stderr.strip() == f"lumos funcs: note: {NO_DWARF_NOTICE}"
    assert "main.prepareAnswer(arg0 {w0, w1}, arg1 word, arg2 word)" in r.stdout


def _with_go_version(src, dst, new: bytes):
    """Copy a Go binary, changing the version string in its build info."""
    shutil.copy(src, dst)
    with ElfBinary(str(dst)) as elf:
        _, off, size = elf.get_section_range(".go.buildinfo")
    data = bytearray(dst.read_bytes())
    pos = data.find(b"go1.27.3", off, off + size)
    assert pos > 0
    data[pos:pos + len(new)] = new
    dst.write_bytes(bytes(data))


def test_newer_go_than_known(tmp_path):
    exe = tmp_path / "future"
    _with_go_version(build("alltypes", "1.27.3", "default"), exe, b"go1.99.0")
    gb = open_go_binary(str(exe), use_cache=False)
    assert gb.go_version == "go1.99.0"
    assert gb.newer_than_known and "newer than lumos knows" in gb.notices[0]
    spec = gb.spec(gb.get_functions("main.prepareAnswer")[0])
    assert spec.signature() == "main.prepareAnswer(name string, year int, status int) string"
    assert gb.runtime_layout().goid_source == "dwarf"
    r = run_lumos("funcs", str(exe), "main.Leaf")
    assert r.returncode == 0 and "main.Leaf(a int) int" in r.stdout
    assert "go1.99.0 is newer than lumos knows" in r.stderr

    stripped = tmp_path / "future-stripped"
    _with_go_version(build("alltypes", "1.27.3", "stripped"), stripped, b"go1.99.0")
    with pytest.raises(GoBinaryError, match="goid in runtime.g unknown for go1.99.0"):
        open_go_binary(str(stripped), use_cache=False).runtime_layout()
    _fails_cleanly(run_lumos("funcs", str(stripped), "--runtime"), "goid")


@pytest.mark.parametrize("cut", [0, 10, 64, 200, 4096, 0x20000, "half", "pclntab", -4096])
def test_truncated_elf(tmp_path, cut):
    src = build("alltypes", "1.23.9", "default")
    data = src.read_bytes()
    if cut == "half":
        cut = len(data) // 2
    elif cut == "pclntab":
        with ElfBinary(str(src)) as elf:
            _, off, size = elf.get_section_range(".gopclntab")
        cut = off + size // 2
    exe = tmp_path / "cut"
    exe.write_bytes(data[:cut])
    try:
        with open_go_binary(str(exe), use_cache=False) as gb:
            for f in gb.match("main.*"):
                gb.spec(f)
    except LumosError:
        pass
    r = run_lumos("funcs", str(exe), timeout=60)
    assert "Traceback" not in r.stderr
    assert r.returncode in (0, 2)
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()) == 1


def test_corrupt_pclntab(tmp_path):
    src = build("alltypes", "1.27.3", "stripped")
    with ElfBinary(str(src)) as elf:
        _, off, _ = elf.get_section_range(".gopclntab")
    data = bytearray(src.read_bytes())
    exe = tmp_path / "bad"
    # an old (Go 1.16) magic
    data[off:off + 4] = struct.pack("<I", 0xFFFFFFFA)
    exe.write_bytes(data)
    with pytest.raises(GoBinaryError, match="Go 1.16-1.17 is not supported"):
        open_go_binary(str(exe), use_cache=False)
    # function table offsets pointing outside the table
    data[off:off + 4] = struct.pack("<I", 0xFFFFFFF1)
    data[off + 64:off + 72] = struct.pack("<Q", 1 << 40)
    exe.write_bytes(data)
    with pytest.raises(GoBinaryError, match="outside the table"):
        open_go_binary(str(exe), use_cache=False)
    _fails_cleanly(run_lumos("funcs", str(exe)), "pclntab")


def test_errors_are_lumos_errors():
    assert issubclass(GoBinaryError, LumosError)
    assert issubclass(BinaryFormatError, LumosError) and issubclass(TargetError, LumosError)
