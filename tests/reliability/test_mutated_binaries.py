"""Mutated real binaries through the command line (hypothesis): USDT notes of a sys/sdt.h
C program under `lumos usdt -v` and `lumos trace`, DWARF (.debug_info, .debug_abbrev,
.debug_loc) of a Go binary under `lumos funcs` and `lumos trace`. Every outcome is
success or exit 2 with one line on stderr: never a traceback, never exit 70, and each
example within its deadline. (tests/golang/test_go_fuzz.py fuzzes the readers below
the CLI; this is what a user sees.)"""

from __future__ import annotations

import contextlib
import io
import subprocess
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.gobuild import build
from support.programs import build_c

from lumos.binary.elf import ElfBinary
from lumos.cli import main

FUZZ = settings(max_examples=80, deadline=8000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
TRIED: dict[str, int] = {}


def _mutations():
    return st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 255)),
                    min_size=1, max_size=10)


def _run(*argv: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    text = err.getvalue()
    assert "Traceback" not in text and code != 70, (argv, code, text)
    if code != 0:
        lines = [x for x in text.splitlines() if x.strip()]
        assert code == 2 and len(lines) == 1, (argv, code, text)
    key = f"{argv[0]} exit {code}"
    TRIED[key] = TRIED.get(key, 0) + 1


@cache
def dwarf_binary() -> tuple[bytes, list[tuple[int, int]]]:
    """A Go 1.19 build with its DWARF decompressed (objcopy), so that mutations reach the
    DIE and location-list parsers; spans: .debug_info around package main's functions,
    .debug_loc, .debug_abbrev (as tests/golang/test_go_fuzz.py)."""
    exe = build("alltypes", "1.19", "default")
    plain = exe.with_name("alltypes-plain-dwarf")
    if not plain.exists():
        subprocess.run(["objcopy", "--decompress-debug-sections", str(exe), str(plain)],
                       check=True)
    data = plain.read_bytes()
    with ElfBinary(str(plain)) as elf:
        info = elf.get_section_range(".debug_info")[1:]
        spans = [elf.get_section_range(n)[1:] for n in (".debug_loc", ".debug_abbrev")]
    main_at = data.find(b"main.Ints\0", info[0], info[0] + info[1])
    assert main_at > 0
    return data, [(main_at - 1024, 8192), *spans]


@cache
def _usdt() -> tuple[bytes, int, int]:
    exe = build_c("usdt")
    with ElfBinary(exe) as elf:
        _, off, size = elf.get_section_range(".note.stapsdt")
    with open(exe, "rb") as f:
        return f.read(), off, size


def _mutated(tmp_path_factory, data: bytes, off: int, size: int, muts, cut=None) -> str:
    data = bytearray(data)
    for pos, val in muts:
        data[off + pos % size] = val
    if cut is not None:
        data = data[:off + int(size * cut)]
    path = tmp_path_factory.mktemp("mut") / "bin"
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return str(path)


@FUZZ
@given(muts=_mutations(), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_usdt_note_mutations(tmp_path_factory, muts, cut):
    path = _mutated(tmp_path_factory, *_usdt(), muts, cut)
    _run("usdt", path, "-v")
    _run("usdt", path, "--json")


@settings(FUZZ, max_examples=20)
@given(muts=_mutations())
def test_usdt_note_mutations_traced(tmp_path_factory, muts):
    _run("trace", _mutated(tmp_path_factory, *_usdt(), muts), "usdt:lumos:*", "-d", "0.2")


@FUZZ
@given(which=st.integers(0, 2), muts=_mutations())
def test_dwarf_mutations(tmp_path_factory, which, muts):
    data, spans = dwarf_binary()
    path = _mutated(tmp_path_factory, data, *spans[which], muts)
    _run("funcs", path, "main.*")


@settings(FUZZ, max_examples=20)
@given(which=st.integers(0, 2), muts=_mutations())
def test_dwarf_mutations_traced(tmp_path_factory, which, muts):
    data, spans = dwarf_binary()
    path = _mutated(tmp_path_factory, data, *spans[which], muts)
    _run("trace", path, "main.Ints", "main.Structs", "main.Ifaces", "-d", "0.2")


def test_examples_ran():
    runs = {t: sum(n for k, n in TRIED.items() if k.startswith(t + " ")) for t in
            ("usdt", "funcs", "trace")}
    assert runs["usdt"] >= 150 and runs["funcs"] >= 75 and runs["trace"] >= 35, TRIED
    assert TRIED.get("usdt exit 2", 0) > 0  # the mutations do break things
    print(f"mutated binaries through the CLI: {TRIED}")
