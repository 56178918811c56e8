"""Where Go's heap sampling lives, per Go version: what lumos allocs probes and reads.

The allocator calls profilealloc -> mProf_Malloc only for the allocations it samples (one
per MemProfileRate bytes on average, 512 KiB by default), after setting up the object;
mProf_Malloc finds the bucket for (stack, size) and ties it to the object with
setprofilebucket(p, b); the sweeper calls mProf_Free(b, ...) when a sampled object
dies. The arguments, as DWARF of each release says (checked by tests/golang):

    Go 1.19-1.22  mProf_Malloc(p unsafe.Pointer, size uintptr)          size in BX
    Go 1.23-1.27  mProf_Malloc(mp *m, p unsafe.Pointer, size uintptr)   size in CX
    Go 1.19-1.26  mProf_Free(b *bucket, size uintptr)                   b in AX
    Go 1.27       mProf_Free(b *bucket)                                 b in AX
    all           setprofilebucket(p unsafe.Pointer, b *bucket)         b in BX
    all           mallocgc(size uintptr, typ *_type, needzero bool)     size AX, typ BX

(--every probes mallocgc: every allocation, the size asked for, and typ, the type
descriptor's address, nil for untyped memory; named by lumos.golang.typenames. Checked
on Go 1.19 and 1.27 PIE by tests/tools/test_allocs.py.) The runtime's own heap
profile (runtime/pprof) scales each (stack, size) bucket by 1 / (1 - exp(-size/rate))
(protomem.go scaleHeapSample); lumos keys by the same (stack, size) and scales the same
way, so its alloc_space matches the program's own profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_RATE = 512 * 1024   # runtime.MemProfileRate's default


@dataclass(frozen=True)
class HeapProbes:
    malloc_size_reg: str        # mProf_Malloc's size argument
    bucket_reg_setbucket: str   # setprofilebucket's b
    bucket_reg_free: str        # mProf_Free's b
    mallocgc_size_reg: str = "ax"
    mallocgc_type_reg: str = "bx"


def heap_probes(minor: int | None) -> HeapProbes:
    """Registers for Go 1.<minor> (1.18 and unknown newer releases: the nearest known)."""
    if minor is not None and minor <= 22:
        return HeapProbes("bx", "bx", "ax")
    return HeapProbes("cx", "bx", "ax")


def scale(count: int, size_bytes: int, rate: int) -> tuple[float, float]:
    """(objects, bytes) a sampled bucket stands for, as runtime/pprof computes them."""
    if count == 0 or size_bytes == 0:
        return 0.0, 0.0
    if rate <= 1:
        return float(count), float(size_bytes)
    avg = size_bytes / count
    s = 1 / (1 - math.exp(-avg / rate))
    return count * s, size_bytes * s


def hide_runtime(locations: list) -> list:
    """The allocator's own frames hidden from the top of a stack, as in Go's heap profile:
    the frames its callers() skips (mProf_Malloc, profilealloc, mallocgc and the
    mallocgc* helpers of Go 1.24+), then leading runtime.* frames unless nothing else
    is left (runtime/pprof protomem.go). `locations` have .frames, innermost first."""
    skip = 0
    while skip < len(locations) and _allocator(locations[skip].frames[-1].function):
        skip += 1
    locations = locations[skip:]
    for i, loc in enumerate(locations):
        if not loc.frames[-1].function.startswith("runtime."):
            return locations[i:]
    return locations


def _allocator(name: str) -> bool:
    return name in ("runtime.mProf_Malloc", "runtime.profilealloc") or \
        name.startswith("runtime.mallocgc")
