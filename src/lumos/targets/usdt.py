"""USDT patterns -> probe sites, argument reads and semaphores, for every tool.

    usdt:python:function__entry           provider:name in the target (globs allowed)
    usdt:function__*                      any provider
    usdt:/usr/lib/libfoo.so:foo:bar       a file given in the pattern (bpftrace's form)
    usdt:libpython3.11:python:*           a library by short name

Files searched: the target binary (or library); with -p also every file the process
maps; with -c the command and its DT_NEEDED libraries.

Semaphores. A probe with a semaphore fires only while the semaphore is non-zero. lumos
prefers the kernel's uprobe ref_ctr_offset (Linux 4.20; uprobe_multi 6.6): the kernel
increments the counter in every process where it installs the probe, processes started
later included, and decrements it when the link goes, even if lumos is killed. Where
the kernel refuses it (a probe already registered at the same place without one, e.g.
by a BCC-style tracer, is EINVAL), lumos writes the semaphore itself through
/proc/PID/mem: +1 after attaching, -1 on the session's ExitStack (Ctrl-C, SIGTERM,
SIGHUP, -d, errors), for the -p process or, without -p, the processes mapping the file
at start (later ones are not covered, and a note says so).
"""

from __future__ import annotations

import fnmatch
import os
import signal
from dataclasses import dataclass, replace

from lumos.binary.elf import open_elf
from lumos.binary.libs import resolve_library
from lumos.binary.procmaps import mapped_libraries
from lumos.binary.procmem import add_u16, mapped_address, processes_mapping
from lumos.binary.usdt import UsdtArg, UsdtProbe, read_probes
from lumos.errors import AttachError, TargetError, UsageError
from lumos.probes.attach import Attached, attach_sites
from lumos.probes.probesite import ProbeSite
from lumos.probes.usdt import ArgLoc, UsdtVariant
from lumos.targets.target import Target

USDT_PREFIX = "usdt:"
NO_NOTES_HINT = ("(it has no .note.stapsdt section: list a file's probes with "
                 "`lumos usdt FILE` or `readelf -n FILE`; programs get them from sys/sdt.h, "
                 "Python from ./configure --with-dtrace, e.g. Debian's /usr/bin/python3.X)")


def is_usdt(pattern: str) -> bool:
    return pattern.startswith(USDT_PREFIX)


@dataclass(frozen=True)
class UsdtPattern:
    file: str | None   # a path or library short name given in the pattern
    provider: str      # globs
    name: str

    @property
    def text(self) -> str:
        return ":".join(x for x in (self.file, self.provider, self.name) if x is not None)


def parse_pattern(pattern: str) -> UsdtPattern:
    body = pattern[len(USDT_PREFIX):] if is_usdt(pattern) else pattern
    parts = body.split(":")
    if not body or any(p == "" for p in parts[-2:]):
        raise UsageError(f"{pattern!r}: expected usdt:[FILE:]PROVIDER:NAME (globs allowed)")
    if len(parts) == 1:
        return UsdtPattern(None, "*", parts[0])
    if len(parts) == 2:
        return UsdtPattern(None, parts[0], parts[1])
    return UsdtPattern(":".join(parts[:-2]), parts[-2], parts[-1])


_probe_cache: dict[tuple[str, int, int], list[UsdtProbe]] = {}


def probes_of(path: str) -> list[UsdtProbe]:
    """The USDT probes of one file (cached by path, size and mtime)."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _probe_cache:
        with open_elf(path) as elf:
            _probe_cache[key] = read_probes(elf)
    return _probe_cache[key]


def files_of(target: Target) -> list[str]:
    """The files whose probes a target offers: the binary, plus what the process maps."""
    files = [target.exe] if target.exe else []
    if target.pid is not None and not target.launched:
        files += [p for p in mapped_libraries(target.pid) if p not in files]
    elif target.launched and target.exe:
        with open_elf(target.exe) as elf:
            needed = elf.needed
        for lib in needed:
            try:
                path = resolve_library(lib.split(".so")[0], target.exe)
            except TargetError:
                continue
            if path not in files:
                files.append(path)
    return [f for f in files if os.path.exists(f)]


def find_probes(target: Target, patterns: list[str]) -> list[UsdtProbe]:
    """Every probe site matching any pattern, once; TargetError naming what was searched."""
    found: dict[tuple[str, int], UsdtProbe] = {}
    for text in patterns:
        pat = parse_pattern(text)
        if pat.file is not None:
            files = [resolve_library(pat.file, target.exe, target.pid
                                     if target.pid and not target.launched else None)]
        else:
            files = files_of(target)
        if not files:
            raise UsageError(f"{text}: a USDT pattern needs a binary, -p or -c")
        hits = []
        for path in files:
            hits += [p for p in probes_of(path) if fnmatch.fnmatchcase(p.provider, pat.provider)
                     and fnmatch.fnmatchcase(p.name, pat.name)]
        if not hits:
            raise TargetError(no_match_message(text, files))
        for p in hits:
            found.setdefault((p.path, p.offset), p)
    return sorted(found.values(), key=lambda p: (p.path, p.provider, p.name, p.pc))


def no_match_message(text: str, files: list[str]) -> str:
    withprobes = [f for f in files if probes_of(f)]
    if not withprobes:
        what = files[0] if len(files) == 1 else f"{len(files)} files ({files[0]}, ...)"
        return f"{text}: {what} has no USDT probes {NO_NOTES_HINT}"
    names = sorted({p.full_name for f in withprobes for p in probes_of(f)})
    return (f"{text} matches no USDT probe; {len(names)} probe(s) in "
            f"{', '.join(withprobes[:3])}: {', '.join(names[:8])}"
            + (" ..." if len(names) > 8 else ""))


def arg_loc(arg: UsdtArg) -> ArgLoc:
    kind = {"reg": "reg", "mem": "mem", "const": "const"}.get(arg.kind, "none")
    return ArgLoc(kind, arg.size, arg.signed, arg.reg, arg.shift, arg.disp, arg.index,
                  arg.scale)


def usdt_sites(probes: list[UsdtProbe], first_func: int = 0,
               ) -> tuple[list[ProbeSite], list[UsdtVariant]]:
    """One ProbeSite per probe site (variant = its argument layout, deduplicated), the
    semaphore as ref_ctr_offset; func_index groups the sites of one provider:name."""
    variants: list[UsdtVariant] = []
    index: dict[UsdtVariant, int] = {}
    names: dict[str, int] = {}
    sites = []
    for p in probes:
        v = UsdtVariant(tuple(arg_loc(a) for a in p.args))
        if v not in index:
            index[v] = len(variants)
            variants.append(v)
        fi = names.setdefault(p.full_name, first_func + len(names))
        sites.append(ProbeSite(p.path, p.offset, f"usdt:{p.full_name}", "usdt", 0, fi,
                               index[v], ref_ctr_offset=p.semaphore_offset))
    return sites, variants


@dataclass
class UsdtAttached:
    attached: list[Attached]
    skipped: list[ProbeSite]
    notes: list[str]
    semaphores: str    # how semaphores are set: "kernel", "/proc/PID/mem", "none", mixed

    @property
    def num_sites(self) -> int:
        return sum(len(a.links) for a in self.attached)


def attach_usdt(build, sites: list[ProbeSite], target: Target, stack, mode: str | None = None,
                semaphores: str = "kernel") -> UsdtAttached:
    """Attach build()'s program at every USDT site and see that semaphores are set.

    semaphores: "kernel" (ref_ctr_offset, falling back to /proc/PID/mem where refused)
    or "mem" (always /proc/PID/mem: needs a running process).
    """
    pid = target.pid
    want_mem = semaphores == "mem"
    if want_mem and (pid is None or target.launched):
        raise UsageError("--semaphores mem needs -p PID (a -c command has not started "
                         "yet; the kernel's ref_ctr sets it from the first instruction)")
    first = [replace(s, ref_ctr_offset=0) for s in sites] if want_mem else sites
    try:
        done = [attach_sites(build, first, pid, stack, mode)]
        skipped = done[0].skipped
    except AttachError:  # every site refused: with ref_ctr_offsets, maybe for them
        if want_mem or not any(s.ref_ctr_offset for s in sites):
            raise
        done, skipped = [], list(sites)
    refused = [s for s in skipped if s.ref_ctr_offset]
    by_mem = [s for s in sites if s.ref_ctr_offset] if want_mem else []
    notes: list[str] = []
    if refused:
        # the kernel refused ref_ctr_offset there: probe without it, write it ourselves
        if target.launched:
            raise TargetError("the kernel refused the probes' semaphores (ref_ctr_offset: "
                              "another tracer has a probe there?); trace the process "
                              "with -p once it runs instead of -c")
        position = {id(s): i for i, s in enumerate(sites)}
        again = attach_sites(build, [replace(s, ref_ctr_offset=0) for s in refused], pid,
                             stack, mode, [position[id(s)] for s in refused])
        done.append(again)
        skipped = [s for s in skipped if not s.ref_ctr_offset] + again.skipped
        by_mem += [s for s in refused if s not in again.skipped]
        notes.append(f"the kernel refused ref_ctr_offset for {len(refused)} site(s); their "
                     f"semaphores are set through /proc/PID/mem")
    if by_mem:
        notes += _set_semaphores(by_mem, pid, stack)
    with_sem = any(s.ref_ctr_offset for s in sites)
    how = ("/proc/PID/mem" if by_mem and not refused else "kernel+/proc/PID/mem" if by_mem
           else "kernel" if with_sem else "none")
    return UsdtAttached(done, skipped, notes, how)


def _set_semaphores(sites: list[ProbeSite], pid: int | None, stack) -> list[str]:
    """+1 on each semaphore now, -1 when the stack unwinds (signals included)."""
    sems = sorted({(s.path, s.ref_ctr_offset) for s in sites})
    notes = []
    pids = [pid] if pid is not None else sorted({p for path, _ in sems
                                                 for p in processes_mapping(path)})
    if pid is None:
        notes.append(f"semaphores set in the {len(pids)} process(es) running now; "
                     f"processes started later fire these probes only if the kernel's "
                     f"ref_ctr_offset works")
    guard = _SignalGuard()
    stack.callback(guard.restore)
    for p in pids:
        for path, off in sems:
            addr = mapped_address(p, path, off)
            if addr is None:
                if pid is not None:
                    raise TargetError(f"PID {p} has not mapped {path}'s data (semaphore at "
                                      f"file offset {off:#x})")
                continue
            add_u16(p, addr, +1)
            stack.callback(guard.run, _decrement, p, addr)
    return notes


def _decrement(pid: int, addr: int) -> None:
    try:
        add_u16(pid, addr, -1)
    except TargetError:
        pass  # the process is gone: nothing left to restore


class _SignalGuard:
    """Until the Session's Runner takes over, SIGTERM and SIGHUP unwind the stack (so a
    semaphore written through /proc/PID/mem is restored) instead of killing lumos."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.unwinding = False
        self.old = {sig: signal.signal(sig, self._raise) for sig in self.SIGNALS}

    def _raise(self, signum, frame):
        if not self.unwinding:
            raise SystemExit(128 + signum)

    def run(self, fn, *args) -> None:
        self.unwinding = True
        fn(*args)

    def restore(self) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
