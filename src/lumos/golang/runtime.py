"""The Go runtime as a tracer needs it: g, goid, stackguard0, newproc1, goexit1, funcval.

- The current g: in R14 in Go code compiled for ABIInternal (Go 1.17+, every Go
  function lumos probes); in thread-local storage at fs_base - 8 on linux/amd64 in all
  code, including ABI0 assembly and cgo callbacks (runtime/go_tls.h: the g slot is at
  -8(FS); assembly loads it with `MOVQ FS:0xfffffffffffffff8, reg`). A BPF program reads
  fs_base from task_struct->thread.fsbase.
- g.goid: offset from DWARF (struct runtime.g), else from GOID_OFFSETS, measured from the
  DWARF of real builds of each release. g.stackguard0 is at 0x10 (after g.stack
  {lo, hi}) in every release since 1.5.
- runtime.newproc1(fn *funcval, callergp *g, callerpc uintptr[, parked bool, waitreason
  waitReason]) *g: the two trailing arguments arrived in Go 1.23. It runs on the system
  stack, so R14 there is g0: the parent is callergp, the child is the result at its
  RETs. fn.fn (offset 0 of funcval) is the new goroutine's start PC: look it up with
  GoBinary.function_at (after removing the PIE load bias).
- runtime.goexit1(): called on the exiting goroutine; its g (R14) is the one ending.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.errors import GoBinaryError
from lumos.golang.model import FuncSpec
from lumos.golang.signature import parse_signature

STACKGUARD0_OFFSET = 0x10
G_REGISTER = "r14"
G_TLS_OFFSET = -8
FUNCVAL_FN_OFFSET = 0

# Go minor version -> offset of goid in runtime.g on amd64, read from the DWARF of real
# builds (1.19, 1.21.13, 1.22.10, 1.23.9, 1.24.11, 1.25.5, 1.26.6, 1.27.3); 1.20 is
# inferred from its neighbours (no toolchain to build with). tests/test_go_runtime.py
# checks the table against DWARF for every toolchain the suite builds with.
GOID_OFFSETS = {19: 0x98, 20: 0x98, 21: 0x98, 22: 0x98, 23: 0xA0, 24: 0xA0, 25: 0x98,
                26: 0x98, 27: 0x98}

_NEWPROC1_OLD = ("runtime.newproc1(fn *runtime.funcval, callergp *runtime.g, "
                 "callerpc uintptr) *runtime.g")
_NEWPROC1_NEW = ("runtime.newproc1(fn *runtime.funcval, callergp *runtime.g, "
                 "callerpc uintptr, parked bool, waitreason uint8) *runtime.g")


def newproc1_signature(minor: int) -> str:
    """runtime.newproc1's signature in Go 1.<minor> (used when there is no DWARF)."""
    return _NEWPROC1_OLD if minor <= 22 else _NEWPROC1_NEW


@dataclass(frozen=True)
class RuntimeLayout:
    """Runtime facts for one binary. goid_source is "dwarf" or "table"."""

    go_version: str
    goid_offset: int
    goid_source: str
    stackguard0_offset: int
    newproc1: FuncSpec | None
    goexit1: FuncSpec | None
    g_register: str = G_REGISTER
    g_tls_offset: int = G_TLS_OFFSET
    funcval_fn_offset: int = FUNCVAL_FN_OFFSET

    def to_dict(self) -> dict:
        return {"go_version": self.go_version, "goid_offset": self.goid_offset,
                "goid_source": self.goid_source,
                "stackguard0_offset": self.stackguard0_offset,
                "newproc1": self.newproc1.to_dict() if self.newproc1 else None,
                "goexit1": self.goexit1.to_dict() if self.goexit1 else None,
                "g_register": self.g_register, "g_tls_offset": self.g_tls_offset,
                "funcval_fn_offset": self.funcval_fn_offset}

    @staticmethod
    def from_dict(d: dict) -> RuntimeLayout:
        return RuntimeLayout(
            d["go_version"], d["goid_offset"], d["goid_source"], d["stackguard0_offset"],
            FuncSpec.from_dict(d["newproc1"]) if d.get("newproc1") else None,
            FuncSpec.from_dict(d["goexit1"]) if d.get("goexit1") else None,
            d.get("g_register", G_REGISTER), d.get("g_tls_offset", G_TLS_OFFSET),
            d.get("funcval_fn_offset", FUNCVAL_FN_OFFSET))


def goid_offset_for(minor: int | None) -> int | None:
    return GOID_OFFSETS.get(minor) if minor is not None else None


def compute_layout(gb) -> RuntimeLayout:
    """Work out the RuntimeLayout of a GoBinary (DWARF first, then the version table)."""
    goid = gb.dwarf.struct_field_offset("runtime.g", "goid") if gb.has_dwarf else None
    source = "dwarf"
    if goid is None:
        goid, source = goid_offset_for(gb.minor), "table"
    if goid is None:
        raise GoBinaryError(
            f"{gb.path}: offset of goid in runtime.g unknown for {gb.go_version or 'this Go'}"
            f" without DWARF (lumos knows go1.19 to go1.{max(GOID_OFFSETS)}; build without "
            "-ldflags=-w to keep DWARF)")
    sg = gb.dwarf.struct_field_offset("runtime.g", "stackguard0") if gb.has_dwarf else None
    return RuntimeLayout(gb.go_version, goid, source, sg if sg is not None else STACKGUARD0_OFFSET,
                         _spec(gb, "runtime.newproc1"), _spec(gb, "runtime.goexit1"))


def _spec(gb, name: str) -> FuncSpec | None:
    funcs = gb.get_functions(name)
    if not funcs:
        return None
    spec = gb.spec(funcs[0])
    if spec.source == "raw" and name == "runtime.newproc1" and gb.minor is not None:
        spec = gb.spec(funcs[0], parse_signature(newproc1_signature(gb.minor)))
    return spec
