"""The pclntab reader against `go tool nm` and `go version -m`, on every toolchain and
build variant (default, stripped, PIE) and on cgo builds."""

from __future__ import annotations

import re

from support.gobuild import PROGRAMS, build, go_tool, nm_functions
from support.gofixtures import alltypes, cgoprog, opened  # noqa: F401

from lumos.binary.elf import ElfBinary
from lumos.golang.buildinfo import read_buildinfo

_ELIDED = re.compile(r"\[\d+\]")


def _nm_reference(b) -> tuple[str, str]:
    """(version, exe) whose `go tool nm` describes b: a stripped build has no symbols,
    so its unstripped twin (same code, same addresses) stands in."""
    if "stripped" in b.variant:
        twin = {"stripped": "default", "cgo-pie-stripped": "cgo-pie",
                "cgo-stripped": "cgo"}[b.variant]
        return b.version, str(build(b.program, b.version, twin))
    return b.version, str(b.exe)


def _check_against_nm(b) -> int:
    gb = opened(b)
    version, ref = _nm_reference(b)
    assert ref, "no reference"
    nm = nm_functions(version, ref)
    by_addr: dict[int, set[str]] = {}
    for name, addr in nm.items():
        by_addr.setdefault(addr, set()).add(name.removesuffix(".abi0"))
    funcs = gb.functions
    assert len(funcs) > 1000
    for f in funcs:
        names = by_addr.get(f.entry, set())
        # the linker writes array lengths in generated type-algorithm names as [...]
        name = f.name.replace("·", ".")  # the symbol table writes · as .
        assert name in names or any(_ELIDED.sub("[...]", n) == name for n in names), \
            f"{b}: {f.name} at {f.entry:#x} not in nm"
    # and the other way round: every Go text symbol of nm is a pclntab function
    entries = {f.entry for f in funcs}
    lo, hi = funcs[0].entry, funcs[-1].end
    missing = [n for n, a in nm.items() if lo <= a < hi and a not in entries
               and not n.startswith(("runtime.text", "runtime.etext", "go:", "go."))]
    assert not missing, f"{b}: nm symbols without pclntab entry: {missing[:5]}"
    return len(funcs)


def test_functions_match_nm(alltypes):  # noqa: F811
    _check_against_nm(alltypes)


def test_cgo_functions_match_nm(cgoprog):  # noqa: F811
    _check_against_nm(cgoprog)


def test_cgo_text_start_is_not_section_start(cgoprog):  # noqa: F811
    """C code comes first in cgo binaries: runtime.text lies past the .text section start,
    and function addresses are still right (checked against nm above)."""
    gb = opened(cgoprog)
    text_sec = gb.elf.get_section_range(".text")[0]
    assert gb._table().text_start > text_sec
    add = gb.get_functions("main.Add")
    assert len(add) == 1


def test_source_lines(alltypes):  # noqa: F811
    gb = opened(alltypes)
    f = gb.get_functions("main.prepareAnswer")[0]
    file, line = gb._table().source_of(f)
    src = (PROGRAMS / "alltypes" / "main.go").read_text().splitlines()
    assert file.endswith("alltypes/main.go")
    assert src[line - 1].startswith("func prepareAnswer(")
    table = gb._table().line_table(f)
    assert table[0][0] == f.entry and table[-1][1] <= f.end
    assert all(t[2].endswith(".go") for t in table)


def test_function_at(alltypes):  # noqa: F811
    gb = opened(alltypes)
    f = gb.get_functions("main.Leaf")[0]
    assert gb.function_at(f.entry) == f
    assert gb.function_at(f.entry + 1).name == "main.Leaf"
    assert gb.function_at(0x10) is None
    assert gb._table().function_at(f.entry + 2).name == "main.Leaf"


def test_buildinfo_matches_go_version_m(alltypes):  # noqa: F811
    with ElfBinary(str(alltypes.exe)) as elf:
        bi = read_buildinfo(elf)
    out = go_tool(alltypes.version, "version", "-m", str(alltypes.exe))
    first, *rest = out.splitlines()
    assert first.endswith(": " + bi.go_version)
    assert bi.go_version.startswith("go" + alltypes.version)
    assert f"\tpath\t{bi.path}" in out and bi.path == "example.com/alltypes"
    assert bi.main_module == "example.com/alltypes"
    for k, v in bi.settings.items():
        assert f"\tbuild\t{k}={v}" in out or f"\tbuild\t{k}=" in out
    assert ("-ldflags" in bi.settings) == (alltypes.variant == "stripped")
    if alltypes.minor >= 20:  # Go 1.19 did not record the build mode
        want = "pie" if alltypes.variant == "pie" else "exe"
        assert bi.settings.get("-buildmode", "exe") == want
