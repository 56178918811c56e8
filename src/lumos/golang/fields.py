"""Struct field offsets a tracer reads behind pointers: DWARF first, else a measured table.

`lumos http` and `lumos sql` read fields of the standard library's structs
(`http.Request.Method`, `url.URL.Path`, `http.response.status`, ...) and of database
drivers' error and result types. Production binaries are often stripped, so DWARF is not
always there. The tables below were read from the DWARF of real builds (the reqsvc test
program, built with each toolchain the suite has), and tests/golang/test_go_fields.py
checks them against DWARF for every one of those toolchains.

Never a guess: a Go minor version that was not measured (1.20, 1.22, 1.24-1.26), or a
driver version not in THIRD_PARTY, gives None, and the tool reports that field as
unknown instead of reading memory at a wrong offset. (The field's leader, OBI/Beyla,
falls back to "assuming 0.0.0" offsets for third-party libraries in stripped builds.)

Field names are "<package path>.<Type>.<field>", as DWARF names the struct types.
"""

from __future__ import annotations

from dataclasses import dataclass

# Offsets that did not change over every measured release.
_COMMON = {
    "net/http.Request.Method": 0, "net/http.Request.URL": 16,
    "net/http.Request.ProtoMajor": 40,
    "net/url.URL.Scheme": 0, "net/url.URL.Host": 40, "net/url.URL.Path": 56,
    "net/http.Response.StatusCode": 16,
    "database/sql.Stmt.query": 8, "database/sql.driverResult.resi": 16,
    "errors.errorString.s": 0, "fmt.wrapError.msg": 0,
}
# The HTTP/2 server lives in net/http's bundle (h2_bundle.go) up to 1.26 and in
# net/http/internal/http2 from 1.27; lumos names both H2_WRITER / H2_STATE.
H2_WRITER, H2_STATE = "h2.responseWriter", "h2.responseWriterState"
H2_NAMES = {H2_WRITER: ("net/http.http2responseWriter", "net/http/internal/http2.responseWriter"),
            H2_STATE: ("net/http.http2responseWriterState",
                       "net/http/internal/http2.responseWriterState")}

# The runtime's g.m and m.curg: where a probe on the system stack finds the goroutine
# it runs for (lumos http/sql's goroutine parents, targets.reqsites._plan_spawn).
_RUNTIME = {19: {"runtime.g.m": 48, "runtime.m.curg": 192},
            21: {"runtime.g.m": 48, "runtime.m.curg": 192},
            23: {"runtime.g.m": 48, "runtime.m.curg": 192},
            27: {"runtime.g.m": 48, "runtime.m.curg": 184}}

# Go minor version -> offsets measured from DWARF (go1.19.8, 1.21.13, 1.23.9, 1.27.3).
STDLIB = {
    19: {**_COMMON, **_RUNTIME[19],
         "net/http.response.status": 120, "net/http.response.written": 104,
         f"{H2_WRITER}.rws": 0, f"{H2_STATE}.status": 80, f"{H2_STATE}.wroteBytes": 104},
    21: {**_COMMON, **_RUNTIME[21],
         "net/http.response.status": 120, "net/http.response.written": 104,
         f"{H2_WRITER}.rws": 0, f"{H2_STATE}.status": 72, f"{H2_STATE}.wroteBytes": 96},
    23: {**_COMMON, **_RUNTIME[23],
         "net/http.response.status": 120, "net/http.response.written": 104,
         f"{H2_WRITER}.rws": 0, f"{H2_STATE}.status": 72, f"{H2_STATE}.wroteBytes": 96},
    27: {**_COMMON, **_RUNTIME[27],
         "net/http.response.status": 128, "net/http.response.written": 112,
         f"{H2_WRITER}.rws": 0, f"{H2_STATE}.status": 240, f"{H2_STATE}.wroteBytes": 264},
}

# Module path -> {version (from the binary's build info) -> offsets}, measured from
# DWARF of builds against Debian's packaged sources.
THIRD_PARTY = {
    "github.com/lib/pq": {"v1.10.7": {"github.com/lib/pq.Error.Message": 32}},
    "github.com/mattn/go-sqlite3": {"v1.14.16": {
        "github.com/mattn/go-sqlite3.Error.err": 24,
        "github.com/mattn/go-sqlite3.SQLiteResult.changes": 8}},
}


@dataclass(frozen=True)
class FieldOffset:
    offset: int
    source: str   # "DWARF" | "table go1.19" | "table github.com/lib/pq v1.10.7"


class FieldResolver:
    """Where fields are in one Go binary (a golang.gobinary.GoBinary)."""

    def __init__(self, gobin):
        self.gobin = gobin
        self._cache: dict[str, FieldOffset | None] = {}
        self.deps = dict(gobin.buildinfo.deps) if gobin.buildinfo else {}

    def get(self, name: str) -> FieldOffset | None:
        """The offset of "<pkg>.<Type>.<field>" (or an H2_* alias), None when unknown."""
        if name not in self._cache:
            self._cache[name] = self._find(name)
        return self._cache[name]

    def _find(self, name: str) -> FieldOffset | None:
        struct, _, member = name.rpartition(".")
        if self.gobin.has_dwarf:
            for s in H2_NAMES.get(struct, (struct,)):
                off = self.gobin.dwarf.struct_field_offset(s, member)
                if off is not None:
                    return FieldOffset(off, "DWARF")
        table = STDLIB.get(self.gobin.minor)
        if table is not None and name in table:
            return FieldOffset(table[name], f"table go1.{self.gobin.minor}")
        for module, versions in THIRD_PARTY.items():
            if name.startswith(module + "."):
                version = _dep_version(self.deps.get(module, ""))
                offs = versions.get(version, {})
                if name in offs:
                    return FieldOffset(offs[name], f"table {module} {version}")
        return None

    def unknown(self, names) -> list[str]:
        return [n for n in names if self.get(n) is None]


def _dep_version(v: str) -> str:
    """'v1.10.7' from a build-info version ('v1.10.7', or 'v1.10.7 => /path' replaced)."""
    return v.split()[0] if v else ""
