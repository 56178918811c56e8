"""The memory layout of the `lumos logs` program: its record (what the BPF side stores
and the decoder reads, one declaration) and its stack slots."""

from __future__ import annotations

from lumos.probes.capture import HEADER_SIZE
from lumos.probes.frame import Frame
from lumos.probes.record import Field, Record

MAX_ELEMS = 16
WINDOW = 64
FOLLOW_SIZES = (64, 64, 16)
MSG_MAX = 128
NRET = 4
ELEM_SIZE = WINDOW + sum(FOLLOW_SIZES)
NO_FOLLOW = 0xFF
RATE_WINDOW_NS = 1_000_000_000

_HEADER = [Field("ts_ns", "u64"), Field("pid", "u32"), Field("tid", "u32"),
           Field("goid", "u64"), Field("site", "u32"), Field("frame", "s32")]
LOG_RECORD = Record("lumos_log", _HEADER + [
    Field("level", "s64", doc="the call's level, sign-extended"),
    Field("verdict", "u64", doc="pt_regs->flags at the check jump, or the logger's level"),
    Field("msg_len", "s64"),
    Field("bias", "u64", doc="regs->ip - the site's ELF address"),
    Field("nelem0", "s64", doc="length of the first attribute slice"),
    Field("nelem1", "s64", doc="length of the second (zap's context)"),
    Field("ret0", "u64"), Field("ret1", "u64"), Field("ret2", "u64"), Field("ret3", "u64"),
    Field("msg", "bytes", MSG_MAX),
    Field("pairs", "bytes", 16 * MAX_ELEMS, doc="(type, data) of each any"),
    Field("elems", "bytes", ELEM_SIZE * MAX_ELEMS,
          doc=f"per element: window[{WINDOW}], follow[{']['.join(map(str, FOLLOW_SIZES))}]"),
])
assert LOG_RECORD.offset("ts_ns") == 0 and LOG_RECORD.offset("level") == HEADER_SIZE

# Stack slots; the first 32 bytes are eventprog's (emit_goroutine's goid and frame at
# FP-16/-24, g at FP-32; emit_reserve's drop scratch at FP-8), used as they are.
FRAME = Frame()
FRAME.slot("eventprog: drop scratch, goid, frame, g", 32)
SLOT_LEVEL = FRAME.slot("level", 8)
SLOT_NOW = FRAME.slot("now_ns (rate limit)", 8)
SLOT_KEY = FRAME.slot("map key (site / type address)", 8)
SLOT_TMP = FRAME.slot("pointer scratch", 8)
SLOT_BP = FRAME.slot("frame pointer walk", 8)
SLOT_PTR1 = FRAME.slot("second slice's data pointer", 8)
SLOT_N = FRAME.slot("number of slices", 8)
SLOT_PTR = FRAME.slot("first slice's data pointer", 8)
SLOT_CLOSURE = FRAME.slot("std log closure: F and four words", 40)
