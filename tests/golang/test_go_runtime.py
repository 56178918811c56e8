"""Runtime layout: goid and stackguard0 offsets from DWARF and from the per-version table,
how to reach g, newproc1's argument layout per version, goexit1, funcval -> name."""

from __future__ import annotations

from support.gobuild import build
from support.gofixtures import Built, alltypes, opened  # noqa: F401

from lumos.golang.runtime import GOID_OFFSETS, newproc1_signature
from lumos.golang.signature import parse_signature


def test_goid_offset_matches_dwarf(alltypes):  # noqa: F811
    """Binaries with DWARF read the offset from runtime.g; stripped ones use the table,
    which must say what the DWARF of the same toolchain says."""
    rt = opened(alltypes).runtime_layout()
    twin = Built("alltypes", alltypes.version, "default",
                 build("alltypes", alltypes.version, "default"))
    dwarf = opened(twin).dwarf.struct_field_offset("runtime.g", "goid")
    assert rt.goid_offset == dwarf == GOID_OFFSETS[alltypes.minor]
    assert rt.goid_source == ("dwarf" if alltypes.has_dwarf else "table")
    assert rt.stackguard0_offset == 0x10
    assert opened(twin).dwarf.struct_field_offset("runtime.g", "stackguard0") == 0x10
    assert rt.g_register == "r14" and rt.g_tls_offset == -8 and rt.funcval_fn_offset == 0


def test_newproc1_layout_without_dwarf(alltypes):  # noqa: F811
    """Stripped binaries get newproc1's arguments from the per-version signature; they
    land where DWARF says they are in the unstripped build."""
    rt = opened(alltypes).runtime_layout()
    np = rt.newproc1
    sig = parse_signature(newproc1_signature(alltypes.minor))
    assert len(np.params) == len(sig.params)
    assert np.source == ("dwarf" if alltypes.has_dwarf else "signature")
    locs = [[loc.describe() for loc in v] for v in np.entry_site.locs]
    assert locs[:3] == [["AX"], ["BX"], ["CX"]]
    if len(locs) == 5:
        assert locs[3:] == [["DI"], ["SI"]]  # parked bool, waitreason uint8
        assert [loc.size for v in np.entry_site.locs[3:] for loc in v] == [1, 1]


def test_goexit1_and_funcval_lookup(alltypes):  # noqa: F811
    gb = opened(alltypes)
    rt = gb.runtime_layout()
    assert rt.goexit1.name == "runtime.goexit1" and rt.goexit1.params == ()
    # a funcval's fn word is a function's entry PC: it maps back to the name
    f = gb.get_functions("main.main.func1")[0]
    assert gb.function_at(f.entry).name == "main.main.func1"
