"""Samples -> a gzipped pprof profile (profile.proto), what `go tool pprof` opens.

Encoded with the `protobuf` package from a profile.proto written from pprof's published
format (output/proto/, generated module committed; `make proto` regenerates it): the
format has ~40 fields, and protobuf's encoder is exact and fast (C++ upb underneath),
so a hand-rolled encoder would buy nothing.

Inlined calls follow the format: one Location per address, with one Line per source
frame, innermost first, the last being the function the code physically sits in. Every
Location carries its function names and lines, and its Mapping says so
(has_functions, has_filenames, has_line_numbers, has_inline_frames), so pprof does not
try to symbolize again. Kernel locations sit in a mapping of their own named
"[kernel.kallsyms]", as perf's converters (perf_to_profile) name it: pprof users can
drop or keep them by mapping (-hide, -show_from), and a comparison with a profile that
sees only user PCs (Go's own) can fold them into the user frame they interrupted.
A sample with no stack at all comes with one location named "[unknown]"
(targets/stacks.py), so its weight shows in every view.
"""

from __future__ import annotations

import gzip
import time

from lumos.output.proto import profile_pb2 as pb

KERNEL_MAPPING = "[kernel.kallsyms]"
KERNEL_START = 0xFFFF_8000_0000_0000   # x86-64: kernel addresses from here up


class _Strings:
    def __init__(self, table):
        self.table = table
        self.index: dict[str, int] = {}
        self("")

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.table)
            self.table.append(s)
        return i


def build_profile(samples, sample_types: list[tuple[str, str]],
                  period_type: tuple[str, str] | None = None, period: int = 0,
                  duration_ns: int = 0, time_ns: int | None = None,
                  default_sample_type: str | None = None,
                  comments: list[str] = (), pid_labels: bool = False) -> pb.Profile:
    """The Profile message for samples (targets.stacks.Sample: locations leaf first)."""
    prof = pb.Profile()
    s = _Strings(prof.string_table)
    for t, u in sample_types:
        prof.sample_type.add(type=s(t), unit=s(u))
    if period_type is not None:
        prof.period_type.type, prof.period_type.unit = s(period_type[0]), s(period_type[1])
    prof.period = period
    prof.duration_nanos = duration_ns
    prof.time_nanos = time_ns if time_ns is not None else time.time_ns()
    if default_sample_type:
        prof.default_sample_type = s(default_sample_type)
    for c in comments:
        prof.comment.append(s(c))
    mapping = prof.mapping.add(id=1, memory_start=0, memory_limit=KERNEL_START,
                               filename=s("lumos"), has_functions=True, has_filenames=True,
                               has_line_numbers=True, has_inline_frames=True)
    kmapping = None
    functions: dict[tuple[str, str], int] = {}
    locations: dict[tuple, int] = {}

    def function_id(name: str, file: str) -> int:
        fid = functions.get((name, file))
        if fid is None:
            fid = functions[(name, file)] = len(functions) + 1
            prof.function.add(id=fid, name=s(name), system_name=s(name), filename=s(file))
        return fid

    def location_id(loc) -> int:
        nonlocal kmapping
        k = (loc.address, loc.kernel, loc.frames)
        lid = locations.get(k)
        if lid is None:
            lid = locations[k] = len(locations) + 1
            mid = mapping.id
            if loc.kernel:
                if kmapping is None:
                    kmapping = prof.mapping.add(
                        id=2, memory_start=KERNEL_START, memory_limit=2**64 - 1,
                        filename=s(KERNEL_MAPPING), has_functions=True, has_filenames=True,
                        has_line_numbers=True, has_inline_frames=True)
                mid = kmapping.id
            pl = prof.location.add(id=lid, mapping_id=mid, address=loc.address)
            for f in loc.frames:
                pl.line.add(function_id=function_id(f.function, f.file), line=f.line)
        return lid

    for smp in samples:
        ps = prof.sample.add(value=list(smp.values))
        ps.location_id.extend(location_id(loc) for loc in smp.locations)
        if pid_labels and smp.pid:
            ps.label.add(key=s("pid"), num=smp.pid)
            if smp.comm:
                ps.label.add(key=s("comm"), str=s(smp.comm))
        for k, v in smp.labels.items():
            ps.label.add(key=s(k), str=s(v))
    return prof


def write_pprof(path: str, samples, sample_types, **kw) -> int:
    """Write the gzipped profile to path; returns its size in bytes."""
    data = gzip.compress(build_profile(samples, sample_types, **kw).SerializeToString(),
                         compresslevel=6)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def read_pprof(path: str) -> pb.Profile:
    """A profile written by lumos or Go (for tests and benchmarks)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    prof = pb.Profile()
    prof.ParseFromString(data)
    return prof
