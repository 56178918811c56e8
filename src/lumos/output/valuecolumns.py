"""Captured Go values of a batch of records as text pieces (output/columns.py), the way
output/govalues.py prints one value, but a column at a time.

Integers, bools, pointers and strings of printable ASCII are formatted with numpy alone;
anything else (floats, slices, interfaces, raw words, strings that need escaping or are
not UTF-8) goes through govalues for just the rows that need it, so text and JSON come out
exactly as the one-at-a-time printer writes them.
"""

from __future__ import annotations

import numpy as np
import orjson

from lumos.output import columns as C
from lumos.output.govalues import format_value, json_value
from lumos.probes.capture import READ_FAILED, Capture
from lumos.probes.decode import UNREADABLE, Text, slice_value

FAST_KINDS = ("int", "uint", "bool", "pointer", "string", "bytes", "hex")


def _word(rec, cap: Capture, i: int) -> np.ndarray:
    return rec[f"{cap.name}.w{i}"]


def _int_values(rec, cap: Capture) -> np.ndarray:
    w = _word(rec, cap, 0)
    size = cap.size if cap.kind != "bool" else 1
    if cap.kind == "int":
        shift = 64 - 8 * min(size, 8)
        return (w.astype(np.int64) << shift) >> shift  # sign-extended
    if size < 8:
        return w & np.uint64((1 << (8 * size)) - 1)
    return w


def _string_parts(rec, cap: Capture):
    """(bytes buffer, copied length, full length) of a string/[]byte capture."""
    full = _word(rec, cap, 1).astype(np.int64)
    copied = np.minimum(np.maximum(full, 0), cap.str_max)  # np.clip: 10x slower here
    return rec[f"{cap.name}.bytes"], copied, full


def python_values(rec, cap: Capture, rows) -> list:
    """The values of some rows as govalues expects them (the slow path)."""
    if not all(w.readable for w in cap.words):
        return [UNREADABLE] * len(rows)
    words = [_word(rec, cap, i)[rows].tolist() for i in range(len(cap.words))]
    if cap.kind == "cstring":
        n = rec[f"{cap.name}.n"][rows].tolist()
        buf = rec[f"{cap.name}.bytes"][rows]
        return [None if p == 0 else UNREADABLE if k <= 0 else
                Text(buf[j, :k - 1].tobytes(), k - 1 + (k == cap.str_max))
                for j, (p, k) in enumerate(zip(words[0], n, strict=True))]
    if cap.kind == "hex":
        return words[0]
    if cap.kind in ("string", "bytes"):
        buf, copied, full = _string_parts(rec, cap)
        return [UNREADABLE if int(full[r]) & READ_FAILED and full[r] >= 0 else
                Text(buf[r, :copied[r]].tobytes(), int(full[r])) for r in rows]
    if cap.kind in ("int", "uint", "bool"):
        vals = _int_values(rec, cap)[rows].tolist()
        return [bool(v) for v in vals] if cap.kind == "bool" else vals
    if cap.kind == "pointer":
        return words[0]
    if cap.reads_elems:
        elems = rec[f"{cap.name}.elems"][rows]
        strs = rec[f"{cap.name}.strs"][rows] if cap.strs_bytes else None
        return [slice_value(cap, w, elems[j].tobytes(),
                            strs[j].tobytes() if strs is not None else b"")
                for j, w in enumerate(zip(*words, strict=True))]
    if cap.kind == "float":
        import struct
        if cap.size == 4:
            return [struct.unpack("<f", struct.pack("<I", w & 0xFFFFFFFF))[0] for w in words[0]]
        return [struct.unpack("<d", struct.pack("<Q", w))[0] for w in words[0]]
    return list(zip(*words, strict=True)) if words else [()] * len(rows)


def _slow(rec, cap: Capture, rows, render) -> C.Piece:
    return C.from_bytes_list([render(cap, v) for v in python_values(rec, cap, rows)])


def _with_slow_rows(fast: list[C.Piece], safe: np.ndarray, rec, cap, render):
    """The fast pieces (kept apart: the line builder lays them out without a join), or,
    when some rows need Python, one piece with those rows replaced."""
    if safe.all():
        return fast
    rows = np.flatnonzero(~safe)
    return C.merge(C.join(fast), rows, _slow(rec, cap, rows, render))


def _text_render(cap: Capture, value) -> bytes:
    return format_value(cap, value).encode()


def text_piece(rec, cap: Capture) -> C.Piece | list[C.Piece]:
    """The value as `lumos trace` prints it: 2021, "Gopher"...(+12), true, nil, 0xc000..."""
    n = len(rec)
    if cap.kind not in FAST_KINDS or not all(w.readable for w in cap.words):
        return _slow(rec, cap, np.arange(n), _text_render)
    if cap.kind in ("int", "uint"):
        return C.decimal(_int_values(rec, cap))
    if cap.kind == "bool":
        v = _int_values(rec, cap) != 0
        return C.select(v, C.const(b"true", n), C.const(b"false", n))
    if cap.kind == "hex":
        return C.hexadecimal(_word(rec, cap, 0))
    if cap.kind == "pointer":
        w = _word(rec, cap, 0)
        null = b"NULL" if cap.type_name.endswith("*") else b"nil"  # C 'char *', Go '*T'
        return C.select(w == 0, C.const(null, n), C.hexadecimal(w))
    buf, copied, full = _string_parts(rec, cap)
    body, safe, cut = _plain_strings(buf, copied, full, cap)
    opener = b'"' if cap.kind == "string" else b'[]byte("'
    closer = b'"' if cap.kind == "string" else b'")'
    pieces = [C.const(opener, n), body, C.const(closer, n)]
    if cut.any():  # "abc"...(+123): what --strlen left out
        more = C.join([C.const(b"...(+", n), C.decimal(full - copied), C.const(b")", n)])
        pieces.append(C.select(cut, more, C.empty(n)))
    return _with_slow_rows(pieces, safe, rec, cap, _text_render)


def _plain_strings(buf, copied, full, cap: Capture):
    """(the copied bytes as a piece; rows numpy alone can format: read, printable ASCII
    without quotes or backslashes; rows cut at --strlen)."""
    read = (full >= 0) & ((full & READ_FAILED) == 0)
    body, plain = C.plain_text(buf, copied)
    return body, plain & read, read & (full > cap.str_max)


def _json_render(cap: Capture, value) -> bytes:
    return orjson.dumps(json_value(cap, value))


def json_piece(rec, cap: Capture) -> C.Piece | list[C.Piece]:
    """The value as `--json` writes it: 2021, {"len":6,"str":"Gopher"}, true, null..."""
    n = len(rec)
    if cap.kind not in FAST_KINDS or not all(w.readable for w in cap.words):
        return _slow(rec, cap, np.arange(n), _json_render)
    if cap.kind in ("int", "uint", "pointer", "hex"):
        return C.decimal(_int_values(rec, cap) if cap.kind in ("int", "uint")
                         else _word(rec, cap, 0))
    if cap.kind == "bool":
        v = _int_values(rec, cap) != 0
        return C.select(v, C.const(b"true", n), C.const(b"false", n))
    buf, copied, full = _string_parts(rec, cap)
    body, safe, cut = _plain_strings(buf, copied, full, cap)
    pieces = [C.const(b'{"len":', n), C.decimal(full), C.const(b',"str":"', n),
              body, C.const(b'"', n)]
    if cut.any():
        pieces.append(C.select(cut, C.const(b',"truncated":true', n), C.empty(n)))
    pieces.append(C.const(b"}", n))
    return _with_slow_rows(pieces, safe, rec, cap, _json_render)
