"""Kernel addresses -> function names, from /proc/kallsyms (what perf and bpftrace use).

Addresses read as zero when kptr_restrict hides them from this process (not root, or
kptr_restrict=2): then every kernel frame is its bare address, and `has_addresses` says
why. Text symbols only (t/T, and w/W weak ones); a module's symbols carry "[module]".
"""

from __future__ import annotations

import bisect


class KernelSymbols:
    def __init__(self, path: str = "/proc/kallsyms"):
        addrs: list[int] = []
        names: list[str] = []
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3 or parts[1] not in ("t", "T", "w", "W"):
                        continue
                    addr = int(parts[0], 16)
                    if addr == 0:
                        continue
                    addrs.append(addr)
                    names.append(parts[2] if len(parts) == 3 else f"{parts[2]} {parts[3]}")
        except OSError:
            pass
        order = sorted(range(len(addrs)), key=addrs.__getitem__)
        self._addrs = [addrs[i] for i in order]
        self._names = [names[i] for i in order]

    @property
    def has_addresses(self) -> bool:
        return bool(self._addrs)

    def name(self, addr: int) -> str | None:
        """The kernel function containing addr (the nearest symbol at or below it)."""
        i = bisect.bisect_right(self._addrs, addr) - 1
        return self._names[i] if i >= 0 else None

    def describe(self, addr: int) -> str:
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return f"{addr:#x}"
        return f"{self._names[i]}+{addr - self._addrs[i]:#x}"


_kernel: KernelSymbols | None = None


def kernel_symbols() -> KernelSymbols:
    """The running kernel's symbols, read once per process."""
    global _kernel
    if _kernel is None:
        _kernel = KernelSymbols()
    return _kernel
