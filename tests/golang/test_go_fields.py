"""golang.fields and golang.typenames against DWARF and symbols of real builds.

The per-version tables are what stripped binaries get: each entry must equal what DWARF
says for every toolchain here, a stripped build must get the table's value, and a
version that was not measured must get nothing (unknown, never a guess).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from support.gobuild import VERSIONS, build, go_tool

from lumos.golang.fields import H2_NAMES, STDLIB, THIRD_PARTY, FieldResolver
from lumos.golang.gobinary import open_go_binary
from lumos.golang.typenames import TypeNames

ITAB_TYPE_OFFSET = 8  # itab._type (runtime/runtime2.go)


def _minor(version: str) -> int:
    return int(version.split(".")[1])


@pytest.mark.parametrize("version", VERSIONS)
def test_tables_equal_dwarf(version):
    exe = build("reqsvc", version, "cgo")
    gobin = open_go_binary(str(exe), use_cache=False)
    assert gobin.has_dwarf and gobin.minor == _minor(version)
    table = STDLIB[gobin.minor]
    for name, offset in table.items():
        struct, _, member = name.rpartition(".")
        dwarf = [gobin.dwarf.struct_field_offset(s, member) for s in H2_NAMES.get(struct,
                                                                                  (struct,))]
        assert offset in dwarf, f"{name}: table {offset}, DWARF {dwarf}"
    deps = dict(gobin.buildinfo.deps)
    for module, versions in THIRD_PARTY.items():
        for name, offset in versions[deps[module]].items():
            struct, _, member = name.rpartition(".")
            assert gobin.dwarf.struct_field_offset(struct, member) == offset, name


@pytest.mark.parametrize("version", ["1.19", "1.27.3"])
def test_stripped_builds_use_the_table(version):
    gobin = open_go_binary(str(build("reqsvc", version, "cgo-stripped")), use_cache=False)
    assert not gobin.has_dwarf
    fields = FieldResolver(gobin)
    got = fields.get("net/http.response.status")
    assert got is not None and got.offset == STDLIB[_minor(version)][
        "net/http.response.status"] and got.source.startswith("table go1.")
    pq = fields.get("github.com/lib/pq.Error.Message")
    assert pq is not None and pq.source == "table github.com/lib/pq v1.10.7"


@dataclass
class _FakeBuildInfo:
    deps: tuple = (("github.com/lib/pq", "v1.99.0"),)


@dataclass
class _Unmeasured:
    """A stripped binary of a Go release the tables do not have."""

    minor: int = 25
    has_dwarf: bool = False
    buildinfo: _FakeBuildInfo = field(default_factory=_FakeBuildInfo)


def test_unmeasured_versions_are_unknown_not_guessed():
    fields = FieldResolver(_Unmeasured())
    assert fields.get("net/http.response.status") is None
    assert fields.get("github.com/lib/pq.Error.Message") is None
    assert "net/url.URL.Path" in fields.unknown(["net/url.URL.Path"])


def _nm(version: str, exe) -> dict[str, int]:
    out = go_tool(version, "tool", "nm", str(exe))
    syms = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms


@pytest.mark.parametrize("version", VERSIONS)
def test_types_base_is_runtime_types(version):
    exe = build("reqsvc", version, "cgo")
    names = TypeNames(open_go_binary(str(exe), use_cache=False))
    syms = _nm(version, exe)
    assert names.region is not None and names.region[0] == syms["runtime.types"]
    assert names.lookup(0) is None and names.lookup(names.region[1] + 8) is None


# Go 1.27's linker keeps no go:itab symbols; its type names are checked end to end by
# test_http_sql (SQL arguments and error types decoded on Go 1.27 builds).
@pytest.mark.parametrize("version", ["1.19", "1.21.13", "1.23.9"])
def test_type_names_of_itab_types(version):
    """An itab's _type (at itab+8) names itself as the symbol says."""
    exe = build("reqsvc", version, "cgo")
    gobin = open_go_binary(str(exe), use_cache=False)
    names = TypeNames(gobin)
    syms = _nm(version, exe)
    for sym, concrete in (("*errors.errorString,error", "*errors.errorString"),
                          ("*github.com/lib/pq.Error,error", "*pq.Error"),
                          ("database/sql.driverResult,database/sql.Result",
                           "sql.driverResult")):
        addr = syms.get("go.itab." + sym, syms.get("go:itab." + sym))   # 1.19 / 1.21+
        assert addr is not None, sym
        tptr = int.from_bytes(gobin.elf.read_vaddr(addr + ITAB_TYPE_OFFSET, 8), "little")
        kind = "ptr" if concrete.startswith("*") else "struct"
        t = names.lookup(tptr)
        assert (t.name, t.kind) == (concrete, kind), sym
