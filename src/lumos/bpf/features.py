"""Kernel feature probes: what this kernel lets lumos do, each probed for real.

A probe loads or attaches the smallest thing that exercises the feature. Its result
is cached: None when it works, else a NotSupportedError (or PrivilegeError) saying
why. Every feature declares the kernel that introduced it, so tests can fail when a
feature older than the running kernel is missing.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from lumos import caps
from lumos.bpf import asm, links, perf
from lumos.bpf import sys as bsys
from lumos.bpf.asm import FP, R0, R1, R2, R3, Helper, Mov, call, exit_
from lumos.bpf.btf import KIND_FUNC, load_vmlinux_btf
from lumos.bpf.maps import array_spec, create_map, ringbuf_spec
from lumos.bpf.prog import ProgramSpec, load_program
from lumos.bpf.tracefs import tracefs_root
from lumos.errors import LumosError, NotSupportedError, PrivilegeError


@dataclass(frozen=True)
class Feature:
    name: str
    min_kernel: str
    gives: str        # what lumos uses it for
    if_missing: str   # the consequence, one line
    probe: Callable[[], None]


def _ret0(prog_type: int, attach_type: int = 0, body=()) -> ProgramSpec:
    return ProgramSpec("lumos_probe", prog_type, tuple(body) + (Mov.imm(R0, 0), exit_()),
                       expected_attach_type=attach_type)


def _probe_privileges() -> None:
    caps.require("cannot load BPF programs", "CAP_BPF", "CAP_PERFMON")


def _probe_btf() -> None:
    load_vmlinux_btf().member_offset("task_struct", "tgid")


def _probe_maps() -> None:
    create_map(array_spec("lumos_probe", 8, 1)).close()


def _probe_ringbuf() -> None:
    try:
        create_map(ringbuf_spec("lumos_probe", 4096)).close()
    except LumosError as e:
        raise NotSupportedError("ring buffer", "5.8", str(e)) from None


def _scratch_file() -> str:
    """A file of NOPs to hang probes on: uprobes accept any offset inside a file."""
    fd, path = tempfile.mkstemp(prefix="lumos-probe-", dir="/tmp")
    os.write(fd, b"\x90" * 64)
    os.close(fd)
    return path


def _probe_uprobes() -> None:
    path = _scratch_file()
    try:
        with load_program(_ret0(bsys.BPF_PROG_TYPE_KPROBE)) as prog:
            links.attach_uprobe(prog, path, 0).close()
    except PrivilegeError:
        # the uprobe PMU wants CAP_SYS_ADMIN; uprobe_multi links (what lumos attaches
        # with wherever they exist) need only CAP_BPF + CAP_PERFMON
        if check("uprobe_multi") is not None:
            raise
    finally:
        os.unlink(path)


def _probe_cookie() -> None:
    body = (call(Helper.get_attach_cookie),)
    load_program(_ret0(bsys.BPF_PROG_TYPE_KPROBE, body=body)).close()


def _probe_uprobe_multi() -> None:
    path = _scratch_file()
    try:
        with load_program(_ret0(bsys.BPF_PROG_TYPE_KPROBE,
                                bsys.BPF_TRACE_UPROBE_MULTI)) as prog:
            links.attach_uprobe_multi(prog, path, [0, 8], [0, 1]).close()
    except LumosError as e:
        raise NotSupportedError("uprobe_multi links", "6.6", str(e)) from None
    finally:
        os.unlink(path)


def _probe_tracepoints() -> None:
    with load_program(_ret0(bsys.BPF_PROG_TYPE_TRACEPOINT)) as prog:
        links.attach_tracepoint(prog, "syscalls", "sys_enter_getpid").close()


def _probe_raw_tracepoints() -> None:
    with load_program(_ret0(bsys.BPF_PROG_TYPE_RAW_TRACEPOINT)) as prog:
        links.attach_raw_tracepoint(prog, "sys_enter").close()


def _probe_perf_sw() -> None:
    with load_program(_ret0(bsys.BPF_PROG_TYPE_PERF_EVENT)) as prog:
        links.attach_sampling(prog, 49, cpus=[bsys.online_cpus()[0]]).close()


def _probe_perf_hw() -> None:
    with load_program(_ret0(bsys.BPF_PROG_TYPE_PERF_EVENT)) as prog:
        links.attach_sampling(prog, 49, cpus=[bsys.online_cpus()[0]],
                              event_type=perf.PERF_TYPE_HARDWARE,
                              config=perf.PERF_COUNT_HW_CPU_CYCLES).close()


def _probe_kernel_read() -> None:
    # bpf_probe_read_kernel(&tmp, 8, current): reading kernel structs by BTF offsets.
    body = (call(Helper.get_current_task), Mov.reg(R3, R0), Mov.reg(R1, FP),
            asm.Add.imm(R1, -8), Mov.imm(R2, 8), call(Helper.probe_read_kernel))
    load_program(_ret0(bsys.BPF_PROG_TYPE_KPROBE, body=body)).close()


def _probe_kprobes() -> None:
    if not os.path.exists("/sys/bus/event_source/devices/kprobe"):
        raise NotSupportedError("kprobes", "4.17", "this kernel is built without "
                                "CONFIG_KPROBES")


def _probe_fentry() -> None:
    func_id = load_vmlinux_btf().find("do_nanosleep", KIND_FUNC)
    spec = ProgramSpec("lumos_probe", bsys.BPF_PROG_TYPE_TRACING, (Mov.imm(R0, 0), exit_()),
                       expected_attach_type=bsys.BPF_TRACE_FENTRY, attach_btf_id=func_id)
    try:
        load_program(spec).close()
    except LumosError as e:
        why = {errno.EPERM: "refused with EPERM (kernel lockdown or a BPF LSM policy)"}.get(
            getattr(e, "errno", 0), str(e))
        raise NotSupportedError("fentry/fexit (BPF trampolines)", "5.5", why) from None


def _probe_ftrace_lists() -> None:
    root = tracefs_root()
    path = os.path.join(root, "available_filter_functions")
    try:
        with open(path) as f:
            f.read(1)
    except OSError as e:
        raise NotSupportedError("ftrace function lists", "",
                                f"{path}: {e.strerror} (lockdown?)") from None


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("privileges", "", "loading programs, attaching probes",
            "nothing works: run lumos as root", _probe_privileges),
    Feature("btf", "5.4", "kernel struct offsets without kernel headers",
            "no kernel struct reads (goroutine ids of assembly code, task fields)", _probe_btf),
    Feature("bpf_syscall", "3.18", "maps and programs", "nothing works", _probe_maps),
    Feature("ringbuf", "5.8", "streaming events to lumos (trace, flow, goroutines)",
            "event tools cannot run; counting tools still work", _probe_ringbuf),
    Feature("uprobes", "4.17", "probes on user functions by file offset",
            "no user-space tracing at all", _probe_uprobes),
    Feature("bpf_cookie", "5.15", "one program for many probe sites",
            "one program per site: slower attach", _probe_cookie),
    Feature("uprobe_multi", "6.6", "attaching thousands of sites in one syscall",
            "falls back to one perf event per site (slower attach and detach)",
            _probe_uprobe_multi),
    Feature("tracepoints", "4.7", "kernel events (syscalls, scheduler) via tracefs ids",
            "kernel-side tools fall back to raw tracepoints", _probe_tracepoints),
    Feature("raw_tracepoints", "4.17", "kernel events without tracefs",
            "kernel-side tools need tracefs", _probe_raw_tracepoints),
    Feature("perf_events", "4.9", "CPU sampling (profiles) with software clocks",
            "no CPU profiles", _probe_perf_sw),
    Feature("perf_events_hw", "4.9", "hardware counters (cycles, cache misses)",
            "profiles use the software cpu-clock instead", _probe_perf_hw),
    Feature("probe_read_kernel", "5.5", "reading kernel structs (task_struct) via BTF offsets",
            "no kernel struct reads", _probe_kernel_read),
    Feature("kprobes", "4.17", "probes on kernel functions",
            "kernel functions are reached through tracepoints instead", _probe_kprobes),
    Feature("fentry", "5.5", "fast probes on kernel functions (BPF trampolines)",
            "kernel functions are reached through tracepoints instead", _probe_fentry),
    Feature("ftrace_lists", "", "listing probeable kernel functions",
            "kernel function names cannot be listed", _probe_ftrace_lists),
)}

_cache: dict[str, LumosError | None] = {}


def check(name: str) -> LumosError | None:
    """None if the feature works here, else the error that says why not (cached)."""
    if name not in _cache:
        feat = FEATURES[name]
        try:
            feat.probe()
            _cache[name] = None
        except (NotSupportedError, PrivilegeError) as e:
            _cache[name] = e
        except LumosError as e:
            _cache[name] = NotSupportedError(feat.name, feat.min_kernel, str(e))
            _cache[name].__cause__ = e
        except OSError as e:
            _cache[name] = NotSupportedError(feat.name, feat.min_kernel, e.strerror or str(e))
    return _cache[name]


def require(name: str) -> None:
    err = check(name)
    if err is not None:
        raise err


def has(name: str) -> bool:
    return check(name) is None


def kernel_release() -> str:
    return os.uname().release


def kernel_version() -> tuple[int, int]:
    parts = kernel_release().split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


__all__ = ["FEATURES", "Feature", "check", "require", "has", "kernel_version"]
