"""lumos http's numpy lines equal the per-record Printer's, text and JSON, row for row."""

from __future__ import annotations

import argparse
import io
import json
import struct

import pytest

from lumos.bpf.ringbuf import HDR_SIZE
from lumos.output.reqcolumns import fast_rows, write_batch
from lumos.output.reqlines import Printer
from lumos.probes import reqrecord as rr
from lumos.probes.reqdecode import ReqDecoder
from lumos.probes.stream import Batch

ROWS = [  # kind, flags, status, bytes, dur_ns, method, path, route_len
    (rr.SERVER, rr.F_PARENT | rr.F_STATUS | rr.F_BYTES, 200, 44, 1_980_050, b"GET", b"/", 1),
    (rr.SERVER, rr.F_PARENT | rr.F_STATUS | rr.F_BYTES, 0, 0, 5_000, b"GET", b"/ping", 5),
    (rr.SERVER, rr.F_PARENT | rr.F_STATUS | rr.F_BYTES | rr.F_H2, 418, 15, 123_456_789_012,
     b"OPTIONS", b"/user/123", 9),
    (rr.SERVER, rr.F_PARENT, 0, 0, 14_999, b"POST", b"/a", 2),              # unknown status
    (rr.SERVER, rr.F_PARENT | rr.F_STATUS, 500, 0, 15_000, b"GET", b'/q"x', 4),  # escaping
    (rr.CLIENT, rr.F_PARENT | rr.F_STATUS, 200, 0, 250_000, b"GET", b"/ping", 5),
    (rr.SERVER, rr.F_PARENT | rr.F_STATUS | rr.F_BYTES, 301, 7, 99_995_000, b"PROPFIND",
     b"/" + b"x" * 70, 64 | 1 << 16),                                        # cut path
]


def _batch() -> Batch:
    size = rr.HTTP.size
    stride = (size + HDR_SIZE + 7) & ~7
    chunk = bytearray(stride * len(ROWS))
    o = rr.HTTP.offsets
    for i, (kind, flags, status, nbytes, dur, method, path, route_len) in enumerate(ROWS):
        base = i * stride
        struct.pack_into("<I", chunk, base, size)
        r = base + HDR_SIZE
        struct.pack_into("<QQIIQII", chunk, r, 10**12 + i * 7_777_777, dur, 4242, 4243,
                         100 + i, kind, flags)
        struct.pack_into("<QII", chunk, r + o["req_id"], 10**12 + i, len(method), len(path))
        chunk[r + o["pmethod"]: r + o["pmethod"] + min(len(method), 8)] = method[:8]
        chunk[r + o["ppath"]: r + o["ppath"] + min(len(path), 64)] = path[:64]
        struct.pack_into("<I", chunk, r + o["proute_len"], route_len)
        chunk[r + o["proute"]: r + o["proute"] + min(len(path), 64)] = path[:64]
        struct.pack_into("<qq", chunk, r + o["status"], status, nbytes)
        if kind == rr.CLIENT:
            struct.pack_into("<II", chunk, r + o["method_len"], 3, 5)
            chunk[r + o["method"]: r + o["method"] + 3] = b"GET"
            chunk[r + o["path"]: r + o["path"] + 5] = b"/ping"
    return Batch(bytes(chunk), len(ROWS), size)


def _printer(json_out: bool) -> Printer:
    args = argparse.Namespace(json=json_out, quiet=False)
    p = Printer(args, False, None)
    p.out = io.StringIO()
    return p


@pytest.mark.parametrize("json_out", [False, True])
def test_columns_equal_printer(json_out):
    batch = _batch()
    decoder = ReqDecoder(rr.HTTP, lambda p: None, {}, (), {}, False)
    slow = _printer(json_out)
    for rec in batch.records():
        slow.event(decoder.decode(rec))
    fast = _printer(json_out)
    fast.offset, fast.clock = slow.offset, slow.clock
    out = io.StringIO()
    fast.out = out
    write_batch(batch, rr.HTTP, fast, decoder, out)
    want, got = slow.out.getvalue().splitlines(), out.getvalue().splitlines()
    assert len(got) == len(want) == len(ROWS)
    if json_out:
        for w, g in zip(want, got, strict=True):
            w, g = json.loads(w), json.loads(g)
            assert abs(w.pop("time") - g.pop("time")) < 2e-6
            assert w == g
    else:   # HH:MM:SS.micro: the float (Printer) and integer (numpy) roundings may differ
        for w, g in zip(want, got, strict=True):
            assert g[15:] == w[15:]
            assert abs(_us(g[:15]) - _us(w[:15])) <= 1
    ok = fast_rows(batch.records_as(rr.HTTP.dtype))
    assert ok.tolist() == [True, True, True, True, False, False, False]


def _us(stamp: str) -> int:
    h, m, rest = stamp.split(":")
    s, us = rest.split(".")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1_000_000 + int(us)
