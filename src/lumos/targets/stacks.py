"""Kernel-counted stacks -> symbolized samples, the one shape every stack output takes
(pprof, folded, flame graph SVG, text).

A Sample is a list of Locations, leaf first, and its values (as the tool's sample types
say). A Location is one address with its source frames, innermost first: a Go PC inside
inlined code is one Location with several frames, as pprof wants it (several Line
entries). The leaf user address is exact (a sampled IP, a probe site); the others are
return addresses and are looked up inside their CALL.

A sample with no stack at all (bpf_get_stackid failed: -EFAULT when the task's user
registers could not be read, -EEXIST on a stack-map collision, and no kernel stack)
gets one Location named "[unknown]" at address 0, as perf and pprof name what they
cannot resolve: its weight stays in every view (pprof's totals, flame graph widths)
instead of a sample with no frames that pprof's -top shows under no function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lumos.binary.kallsyms import kernel_symbols
from lumos.golang.inline import SourceFrame
from lumos.targets.symbolize import Symbolizer


@dataclass(frozen=True)
class Location:
    address: int
    frames: tuple[SourceFrame, ...]   # innermost first
    kernel: bool = False


UNKNOWN = "[unknown]"


@dataclass
class Sample:
    locations: list[Location]          # leaf first
    values: list[int]
    pid: int = 0
    comm: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def functions(self) -> list[str]:
        """Function names leaf first, inlined frames included."""
        return [f.function for loc in self.locations for f in loc.frames]


UNKNOWN_LOCATION = Location(0, (SourceFrame(UNKNOWN, "", 0),))


class StackSymbolizer:
    """Symbolizes StackCount entries; one Symbolizer per process, kallsyms once."""

    def __init__(self, exe: str | None = None):
        self.exe = exe
        self._per_pid: dict[int, Symbolizer] = {}
        self._kernel = None

    def watch(self, pid: int | None) -> None:
        """Read a process's mappings now (call once a -c command has exec'd): it may
        have exited, its maps gone, by the time its stacks are symbolized."""
        if pid:
            s = self._per_pid[pid] = Symbolizer(pid, self.exe)
            s.load_maps()

    def symbolizer(self, pid: int) -> Symbolizer:
        s = self._per_pid.get(pid)
        if s is None:
            s = self._per_pid[pid] = Symbolizer(pid or None, self.exe)
            s.load_maps(timeout_s=0)
        return s

    def locations(self, pid: int, user: tuple[int, ...], kernel: tuple[int, ...] = ()
                  ) -> list[Location]:
        out = []
        if kernel:
            if self._kernel is None:
                self._kernel = kernel_symbols()
            for addr in kernel:
                name = self._kernel.name(addr) or f"{addr:#x}"
                out.append(Location(addr, (SourceFrame(name, "", 0),), True))
        sym = self.symbolizer(pid)
        for i, addr in enumerate(user):
            out.append(Location(addr, tuple(sym.frames(addr, return_address=i > 0))))
        return out or [UNKNOWN_LOCATION]

    def samples(self, counts, values) -> list[Sample]:
        """One Sample per StackCount; values(count) -> its value list."""
        return [Sample(self.locations(c.pid, c.user, c.kernel), values(c), c.pid, c.comm)
                for c in counts]


def merge_samples(samples: list[Sample]) -> list[Sample]:
    """Samples with equal stacks (after symbolization) and labels summed into one."""
    merged: dict[tuple, Sample] = {}
    for s in samples:
        k = (tuple(loc.address for loc in s.locations), s.pid, s.comm,
             tuple(sorted(s.labels.items())))
        if k in merged:
            m = merged[k]
            m.values = [a + b for a, b in zip(m.values, s.values, strict=True)]
        else:
            merged[k] = Sample(list(s.locations), list(s.values), s.pid, s.comm,
                               dict(s.labels))
    return list(merged.values())
