"""Helpers for tests that watch a running lumos (or traced) process from outside."""

from __future__ import annotations

import os
import select
import time


def wait_for_banner(proc, timeout: float = 60.0) -> str:
    """Read proc's stderr until the 'Tracing ...' banner (probes are attached then);
    return what came before it."""
    seen, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        line = proc.stderr.readline()
        if not line:
            break
        if line.startswith("Tracing"):
            return "".join(seen)
        seen.append(line)
    raise AssertionError(f"no banner within {timeout} s; stderr: {''.join(seen)}")


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in f)
                if k in ("VmRSS", "VmHWM")}


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def text_byte(pid: int, path: str, vaddr: int) -> int:
    """The byte at vaddr of `path` as mapped in a live process (0xCC where a uprobe is
    set): uprobes write the process's copy of the page, never the file."""
    from lumos.binary.elf import open_elf
    from lumos.binary.procmaps import read_maps
    with open_elf(path) as elf:
        off = elf.vaddr_to_offset(vaddr)
    for m in read_maps(pid):
        if m.path == path and m.offset <= off < m.offset + (m.end - m.start):
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(m.start + off - m.offset)
                return mem.read(1)[0]
    raise AssertionError("function not mapped")
