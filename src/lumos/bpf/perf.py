"""perf_event_open(2): the events BPF programs hang off (uprobe PMU, tracepoints, sampling).

Only the attr fields lumos uses are named; the structure is sized to
PERF_ATTR_SIZE_VER8 so the kernel reads our zeros for everything else.
"""

from __future__ import annotations

import ctypes
import errno
from functools import cache

from lumos import caps
from lumos.bpf import sys as bsys
from lumos.bpf.sys import FD
from lumos.errors import BPFError, LumosError, NotSupportedError, PrivilegeError

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2

PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_COUNT_SW_PAGE_FAULTS_MIN = 5  # counted where the kernel counts rusage ru_minflt
PERF_COUNT_SW_PAGE_FAULTS_MAJ = 6  # ... and ru_majflt (mm_account_fault)

PERF_SAMPLE_RAW = 1 << 10

PERF_FLAG_FD_CLOEXEC = 1 << 3

# attr.flags bits
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_FREQ = 1 << 10

PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

UPROBE_PMU_TYPE_FILE = "/sys/bus/event_source/devices/uprobe/type"
UPROBE_RETPROBE_BIT = 1 << 0  # config:0 in .../uprobe/format/retprobe
UPROBE_REF_CTR_SHIFT = 32     # config:32-63 in .../uprobe/format/ref_ctr_offset


class PerfEventAttr(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),  # or sample_freq with FLAG_FREQ
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),  # uprobe_path
        ("config2", ctypes.c_uint64),  # probe_offset
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("_reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("_reserved_3", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
        ("config3", ctypes.c_uint64),
    ]


@cache
def uprobe_pmu_type() -> int:
    try:
        with open(UPROBE_PMU_TYPE_FILE) as f:
            return int(f.read())
    except OSError:
        raise NotSupportedError("uprobe PMU", "4.17",
                                f"{UPROBE_PMU_TYPE_FILE} is missing (CONFIG_UPROBES)") from None


def _perf_refusal(attr: PerfEventAttr, what: str) -> LumosError:
    if gone := caps.missing("CAP_PERFMON"):
        return caps.refusal(what, gone)
    if attr.type == uprobe_pmu_type() and not caps.has("CAP_SYS_ADMIN"):
        return caps.refusal(what, ["CAP_SYS_ADMIN"])  # measured: the uprobe PMU wants it
    return PrivilegeError(f"{what}: permission denied (check "
                          f"/proc/sys/kernel/perf_event_paranoid and any LSM policy)")


def open_perf_event(attr: PerfEventAttr, pid: int, cpu: int, what: str) -> FD:
    attr.size = ctypes.sizeof(PerfEventAttr)
    try:
        return FD(bsys.perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC))
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            raise _perf_refusal(attr, what) from None
        if e.errno == errno.ENOENT and attr.type == PERF_TYPE_HARDWARE:
            raise NotSupportedError("hardware perf events", "",
                                    "this machine exposes no CPU PMU (a VM?)") from None
        if e.errno == errno.EMFILE:
            raise BPFError(f"{what}: too many open files (raise `ulimit -n`)", e.errno) from None
        raise BPFError(f"{what}: perf_event_open: {e.strerror}", e.errno) from None


def open_uprobe_event(path: str, offset: int, pid: int = -1, retprobe: bool = False,
                      ref_ctr_offset: int = 0) -> FD:
    """A uprobe perf event at a file offset (no tracefs text probe is ever created)."""
    cpath = ctypes.create_string_buffer(path.encode())
    attr = PerfEventAttr(type=uprobe_pmu_type(), flags=FLAG_DISABLED,
                         config=(UPROBE_RETPROBE_BIT if retprobe else 0)
                         | (ref_ctr_offset << UPROBE_REF_CTR_SHIFT),
                         config1=ctypes.addressof(cpath), config2=offset)
    # pid -1 needs a cpu; BPF runs on every CPU anyway (trace_call_bpf ignores it).
    return open_perf_event(attr, pid, 0 if pid < 0 else -1, f"uprobe {path}:{offset:#x}")


def open_tracepoint_event(tp_id: int, name: str) -> FD:
    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tp_id, flags=FLAG_DISABLED,
                         sample_type=PERF_SAMPLE_RAW, sample_period=1, wakeup_events=1)
    return open_perf_event(attr, -1, 0, f"tracepoint {name}")


def open_sampling_event(cpu: int, freq_hz: int, pid: int = -1,
                        event_type: int = PERF_TYPE_SOFTWARE,
                        config: int = PERF_COUNT_SW_CPU_CLOCK) -> FD:
    attr = PerfEventAttr(type=event_type, config=config, sample_period=freq_hz,
                         flags=FLAG_DISABLED | FLAG_FREQ)
    return open_perf_event(attr, pid, cpu, f"perf event on cpu {cpu}")


def open_counting_event(cpu: int, event_type: int, config: int, period: int = 1,
                        pid: int = -1) -> FD:
    """An event whose BPF program runs every `period` occurrences (1: every page fault)."""
    attr = PerfEventAttr(type=event_type, config=config, sample_period=period,
                         flags=FLAG_DISABLED)
    return open_perf_event(attr, pid, cpu, f"perf event {event_type}:{config} on cpu {cpu}")


def enable(fd: FD) -> None:
    bsys.ioctl(fd.fd, PERF_EVENT_IOC_ENABLE, 0)
