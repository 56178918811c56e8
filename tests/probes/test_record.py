"""Record declarations and stack frames: one source for emitter offsets and decoder structs."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from lumos.bpf.frame import Frame
from lumos.errors import AsmError
from lumos.probes.capture import HEADER, HEADER_RECORD, Capture, RecordLayout, WordLoc
from lumos.probes.record import Field, Record


def test_header_matches_its_struct_and_dtype():
    assert HEADER_RECORD.size == HEADER.size == 32
    assert [HEADER_RECORD.offset(n) for n in ("ts_ns", "pid", "tid", "goid", "site", "frame")] \
        == [0, 8, 12, 16, 24, 28]
    raw = HEADER.pack(1, 2, 3, 4, 5, -6)
    row = np.frombuffer(raw, HEADER_RECORD.dtype)[0]
    assert (int(row["ts_ns"]), int(row["pid"]), int(row["tid"]), int(row["goid"]),
            int(row["site"]), int(row["frame"])) == (1, 2, 3, 4, 5, -6)


def test_natural_alignment_and_padding():
    r = Record("r", [Field("a", "u8"), Field("b", "u32"), Field("c", "u16"),
                     Field("d", "u64"), Field("s", "bytes", 3)])
    assert r.offsets == {"a": 0, "b": 4, "c": 8, "d": 16, "s": 24}
    assert r.size == 32
    packed = r.struct.pack(1, 2, 3, 4, b"xyz")
    assert len(packed) == 27 and struct.unpack_from("<I", packed, 4)[0] == 2
    assert "__u8 s[3];  /* +24 */" in r.c_struct()
    with pytest.raises(ValueError):
        Record("dup", [Field("a", "u8"), Field("a", "u8")])


def test_capture_layout_follows_the_header():
    name = Capture("name", "string", (WordLoc.register("ax"), WordLoc.register("bx")), 16,
                   str_max=5)
    year = Capture("year", "int", (WordLoc.register("cx"),))
    layout = RecordLayout((name, year))
    assert layout.offsets == [32, 56]          # 2 words + 8 bytes (5 rounded up) of name
    assert layout.size == 64
    assert layout.record.offset("name.bytes") == 48


def test_frame_slots_are_named_and_bounded():
    f = Frame()
    assert f.slot("goid", 8) == -8
    assert f.slot("key", 16) == -24
    assert f.slot("goid", 8) == -8                # asked again: the same slot
    assert f.describe(-16) == "key+8"
    with pytest.raises(AsmError, match="asked for as 4 bytes"):
        f.slot("goid", 4)
    f.slot("big", 488)  # 512 bytes in use
    with pytest.raises(AsmError, match="does not fit"):
        f.slot("more", 8)
