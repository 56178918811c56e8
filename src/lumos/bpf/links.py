"""Links: a loaded program attached to an event. One class per attach kind.

Every link owns its kernel objects and detaches on close(); closing twice is harmless.
Constructors undo partial work before raising (perf fd opened, attach failed: close
it). All attachments are fds, so a killed lumos leaves nothing behind in the kernel.

    PerfEventLink     a perf event + BPF_LINK_CREATE(BPF_PERF_EVENT): uprobe, tracepoint,
                      one CPU of a sampling event (cookies: Linux 5.15)
    UprobeMultiLink   many uprobes of one file in one syscall (Linux 6.6)
    RawTracepointLink BPF_RAW_TRACEPOINT_OPEN (no tracefs needed)
    LinkGroup         several links closed together, in reverse order
"""

from __future__ import annotations

import ctypes
import errno
import resource

from lumos import caps
from lumos.bpf import perf
from lumos.bpf import sys as bsys
from lumos.bpf.prog import Program
from lumos.bpf.sys import FD
from lumos.bpf.tracefs import tracepoint_id
from lumos.errors import AttachError, NotSupportedError, PrivilegeError, TargetError


class Link:
    """Base: owns fds, closes them in reverse order of acquisition."""

    kind = "link"

    def __init__(self, fds: list[FD], description: str):
        self._fds = fds
        self.description = description

    def close(self) -> None:
        for fd in reversed(self._fds):
            fd.close()

    @property
    def closed(self) -> bool:
        return all(fd.closed for fd in self._fds)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> bsys.BpfLinkInfo:
        """struct bpf_link_info of the BPF link fd (type, id, prog_id)."""
        return bsys.obj_get_info(self._fds[-1].fd, bsys.BpfLinkInfo())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"


class PerfEventLink(Link):
    kind = "perf_event"


class UprobeMultiLink(Link):
    kind = "uprobe_multi"

    def __init__(self, fds: list[FD], description: str, num_sites: int):
        super().__init__(fds, description)
        self.num_sites = num_sites


class RawTracepointLink(Link):
    kind = "raw_tracepoint"

    def info(self) -> bsys.BpfLinkInfo:
        return bsys.obj_get_info(self._fds[-1].fd, bsys.BpfLinkInfo())


class LinkGroup(Link):
    """Several links that live and die together (per-site uprobes, per-CPU events)."""

    kind = "group"

    def __init__(self, links: list[Link], description: str):
        super().__init__([], description)
        self.links = links

    def close(self) -> None:
        for link in reversed(self.links):
            link.close()

    @property
    def closed(self) -> bool:
        return all(link.closed for link in self.links)

    def info(self) -> bsys.BpfLinkInfo:
        return self.links[0].info()


def _attach_error(what: str, e: OSError) -> Exception:
    if e.errno in (errno.EPERM, errno.EACCES):
        if gone := caps.missing("CAP_BPF", "CAP_PERFMON") or caps.missing("CAP_SYS_ADMIN"):
            return caps.refusal(what, gone)
        return PrivilegeError(f"{what}: permission denied (an LSM policy or lockdown?)")
    if e.errno == 524:  # ENOTSUPP (kernel-internal): e.g. uprobes refuse INT3
        return AttachError(f"{what}: the kernel cannot probe the instruction there", e.errno)
    if e.errno == errno.EINVAL:
        return AttachError(f"{what}: invalid argument (the program type does not match "
                           f"the event, or the offset is not an instruction)", e.errno)
    return AttachError(f"{what}: {e.strerror}", e.errno)


def attach_perf_event(prog: Program, perf_fd: FD, cookie: int = 0,
                      description: str = "") -> PerfEventLink:
    """Attach prog to an open (disabled) perf event and enable it. Takes ownership."""
    what = description or f"perf event for {prog.name}"
    attr = bsys.LinkCreateAttr(prog_fd=prog.fd, target_fd=perf_fd.fd,
                               attach_type=bsys.BPF_PERF_EVENT)
    attr.opts.perf_event.bpf_cookie = cookie
    try:
        link_fd = FD(bsys.bpf(bsys.BPF_LINK_CREATE, attr))
    except OSError as e:
        perf_fd.close()
        raise _attach_error(what, e) from None
    try:
        perf.enable(perf_fd)
    except OSError as e:
        link_fd.close()
        perf_fd.close()
        raise _attach_error(what, e) from None
    return PerfEventLink([perf_fd, link_fd], what)


def attach_uprobe(prog: Program, path: str, offset: int, pid: int = -1, cookie: int = 0,
                  retprobe: bool = False, ref_ctr_offset: int = 0) -> PerfEventLink:
    """One uprobe at a file offset (prog: BPF_PROG_TYPE_KPROBE). ref_ctr_offset: a USDT
    semaphore's file offset, which the kernel increments while the probe is in."""
    pfd = perf.open_uprobe_event(path, offset, pid, retprobe, ref_ctr_offset)
    return attach_perf_event(prog, pfd, cookie, f"uprobe {path}:{offset:#x}")


def attach_uprobe_multi(prog: Program, path: str, offsets: list[int],
                        cookies: list[int] | None = None, pid: int = -1,
                        retprobe: bool = False,
                        ref_ctr_offsets: list[int] | None = None) -> UprobeMultiLink:
    """Many uprobes in one file with one link (prog loaded for BPF_TRACE_UPROBE_MULTI).

    ref_ctr_offsets: per site, a USDT semaphore's file offset (0: none) that the kernel
    increments in every process the probe is installed in, and decrements at detach."""
    n = len(offsets)
    if n == 0:
        raise AttachError("uprobe_multi: no offsets")
    cpath = ctypes.create_string_buffer(path.encode())
    offs = (ctypes.c_uint64 * n)(*offsets)
    cks = (ctypes.c_uint64 * n)(*cookies) if cookies is not None else None
    refs = ((ctypes.c_uint64 * n)(*ref_ctr_offsets) if ref_ctr_offsets is not None
            and any(ref_ctr_offsets) else None)
    attr = bsys.LinkCreateAttr(prog_fd=prog.fd, attach_type=bsys.BPF_TRACE_UPROBE_MULTI)
    um = attr.opts.uprobe_multi
    um.path = ctypes.addressof(cpath)
    um.offsets = ctypes.addressof(offs)
    um.cookies = ctypes.addressof(cks) if cks is not None else 0
    um.ref_ctr_offsets = ctypes.addressof(refs) if refs is not None else 0
    um.cnt = n
    um.flags = bsys.BPF_F_UPROBE_MULTI_RETURN if retprobe else 0
    um.pid = max(pid, 0)
    what = f"uprobe_multi {path} ({n} sites)"
    try:
        fd = FD(bsys.bpf(bsys.BPF_LINK_CREATE, attr))
    except OSError as e:
        if e.errno == errno.ESRCH:
            raise TargetError(f"PID {pid} is not running") from None
        if e.errno == errno.ENOENT:
            raise TargetError(f"{path}: no such file") from None
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise NotSupportedError("uprobe_multi links", "6.6") from None
        raise _attach_error(what, e) from None
    return UprobeMultiLink([fd], what, n)


def attach_tracepoint(prog: Program, category: str, name: str,
                      cookie: int = 0) -> PerfEventLink:
    """prog (BPF_PROG_TYPE_TRACEPOINT) on category:name; mounts tracefs if needed."""
    pfd = perf.open_tracepoint_event(tracepoint_id(category, name), f"{category}:{name}")
    return attach_perf_event(prog, pfd, cookie, f"tracepoint {category}:{name}")


def attach_raw_tracepoint(prog: Program, name: str) -> RawTracepointLink:
    """prog (BPF_PROG_TYPE_RAW_TRACEPOINT) on a raw tracepoint, e.g. 'sched_switch'."""
    cname = ctypes.create_string_buffer(name.encode())
    attr = bsys.RawTracepointOpenAttr(name=ctypes.addressof(cname), prog_fd=prog.fd)
    try:
        fd = FD(bsys.bpf(bsys.BPF_RAW_TRACEPOINT_OPEN, attr))
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise TargetError(f"raw tracepoint {name} does not exist") from None
        raise _attach_error(f"raw tracepoint {name}", e) from None
    return RawTracepointLink([fd], f"raw_tracepoint {name}")


def attach_sampling(prog: Program, freq_hz: int, pid: int = -1,
                    cpus: list[int] | None = None, event_type: int = perf.PERF_TYPE_SOFTWARE,
                    config: int = perf.PERF_COUNT_SW_CPU_CLOCK) -> LinkGroup:
    """prog (BPF_PROG_TYPE_PERF_EVENT) at freq_hz on every online CPU (or on pid's threads)."""
    links: list[Link] = []
    targets = [-1] if pid > 0 else (cpus if cpus is not None else bsys.online_cpus())
    try:
        for cpu in targets:
            fd = perf.open_sampling_event(cpu, freq_hz, pid, event_type, config)
            links.append(attach_perf_event(prog, fd, 0, f"perf event cpu {cpu}"))
    except BaseException:
        for link in reversed(links):
            link.close()
        raise
    return LinkGroup(links, f"sampling at {freq_hz} Hz on {len(links)} events")


def ensure_fd_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE so `needed` more fds fit (per-site uprobes use 2 each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
