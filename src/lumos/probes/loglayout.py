"""The memory layout of the `lumos logs` program: its record (what the BPF side stores
and the decoder reads, one declaration). Its stack slots are named in the program's
Frame (Asm.frame) where they are used: level, now_ns, map_key, ptr_scratch, bp_walk,
slice0_ptr, slice1_ptr, num_slices, log_closure."""

from __future__ import annotations

from lumos.probes.capture import HEADER_SIZE
from lumos.probes.record import Field, Record

MAX_ELEMS = 16
WINDOW = 64
FOLLOW_SIZES = (64, 64, 16)
MSG_MAX = 128
NRET = 4
ELEM_SIZE = WINDOW + sum(FOLLOW_SIZES)
NO_FOLLOW = 0xFF
RATE_WINDOW_NS = 1_000_000_000

_HEADER = [
    Field("ts_ns", "u64"),
    Field("pid", "u32"),
    Field("tid", "u32"),
    Field("goid", "u64"),
    Field("site", "u32"),
    Field("frame", "s32"),
]
LOG_RECORD = Record(
    "lumos_log",
    _HEADER
    + [
        Field("level", "s64", doc="the call's level, sign-extended"),
        Field("verdict", "u64", doc="pt_regs->flags at the check jump, or the logger's level"),
        Field("msg_len", "s64"),
        Field("bias", "u64", doc="regs->ip - the site's ELF address"),
        Field("nelem0", "s64", doc="length of the first attribute slice"),
        Field("nelem1", "s64", doc="length of the second (zap's context)"),
        Field("ret0", "u64"),
        Field("ret1", "u64"),
        Field("ret2", "u64"),
        Field("ret3", "u64"),
        Field("failed", "u64", doc="copies the kernel could not make: bit 4*i element i's "
              "window, 4*i+1+k its follow k (the message and pairs: READ_FAILED in msg_len, "
              "nelem0/1)"),
        Field("msg", "bytes", MSG_MAX),
        Field("pairs", "bytes", 16 * MAX_ELEMS, doc="(type, data) of each any"),
        Field(
            "elems",
            "bytes",
            ELEM_SIZE * MAX_ELEMS,
            doc=f"per element: window[{WINDOW}], follow[{']['.join(map(str, FOLLOW_SIZES))}]",
        ),
    ],
)
assert LOG_RECORD.offset("ts_ns") == 0 and LOG_RECORD.offset("level") == HEADER_SIZE


SLOTS = {
    "level": 8,
    "now_ns": 8,
    "map_key": 8,
    "ptr_scratch": 8,
    "bp_walk": 8,
    "slice0_ptr": 8,
    "slice1_ptr": 8,
    "num_slices": 8,
    "log_closure": 40,
}


def failed_bit(elem: int, part: int) -> int:
    """The `failed` bit of element elem's window (part 0) or follow k (part 1 + k)."""
    return 1 << (4 * elem + part)


def slot(a, name: str) -> int:
    """FP offset of one of the program's stack slots (allocated in a.frame on first use)."""
    return a.frame.slot(name, SLOTS[name])
