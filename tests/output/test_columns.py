"""output/columns.py against Python's own formatting, row for row: numbers, strings cut
by length with garbage past it, the plain-text check, and lines put back in row order."""

from __future__ import annotations

import numpy as np

from lumos.output import columns as C

RNG = np.random.default_rng(8)


def _lines(pieces) -> list[str]:
    return bytes(C.lines(pieces)).decode().split("\n")[:-1]


def test_decimal_matches_printf_widths_and_signs():
    values = np.concatenate([RNG.integers(-2**63, 2**63 - 1, 300, dtype=np.int64)
                             >> RNG.integers(0, 63, 300), [0, -1, 9, 10, -10, 2**63 - 1,
                                                           -2**63]]).astype(np.int64)
    for width in (0, 1, 7, 25):
        got = _lines([C.const(b"<", len(values)), C.decimal(values, width),
                      C.const(b">", len(values))])
        assert got == [f"<{int(v):>{width}}>" for v in values]


def test_unsigned_decimal_and_hex():
    values = (RNG.integers(0, 2**64 - 1, 200, dtype=np.uint64)
              >> RNG.integers(0, 64, 200).astype(np.uint64))
    assert _lines([C.decimal(values)]) == [str(int(v)) for v in values]
    assert _lines([C.hexadecimal(values)]) == [f"{int(v):#x}" for v in values]


def test_text_cut_by_length_whatever_lies_past_it():
    rows = 300
    buf = RNG.integers(0x20, 0x7F, (rows, 40), dtype=np.uint8)
    lens = RNG.integers(0, 41, rows)
    buf[:, 30:] = 0   # NULs and garbage past the length are not text
    buf[::7, 35:] = 0xFF
    buf[:, :30][buf[:, :30] == ord('"')] = ord("a")
    buf[:, :30][buf[:, :30] == ord("\\")] = ord("b")
    body, plain = C.plain_text(buf, np.minimum(lens, 30))
    assert plain.all()
    want = [buf[i, :min(lens[i], 30)].tobytes().decode() for i in range(rows)]
    assert _lines([C.const(b'"', rows), body, C.const(b'"', rows)]) == \
        [f'"{w}"' for w in want]


def test_plain_text_flags_every_byte_that_needs_escaping_inside_the_length():
    for bad in [0x00, 0x01, 0x1F, ord('"'), ord("\\"), 0x7F, 0x80, 0xFF]:
        buf = np.full((4, 16), ord("a"), np.uint8)
        buf[0, 3] = bad            # inside: not plain
        buf[1, 10] = bad           # past the length: plain
        buf[2, 0] = bad            # first byte
        buf[3, 15] = bad           # last byte of a full row
        _, plain = C.plain_text(buf, np.array([8, 8, 1, 16]))
        assert plain.tolist() == [False, True, False, False], hex(bad)


def test_slow_rows_merged_and_groups_interleaved_in_row_order():
    rows = 50
    values = RNG.integers(-500, 500, rows)
    slow = np.flatnonzero(values % 3 == 0)
    fast = C.decimal(values, 5)
    merged = C.merge(fast, slow, C.from_bytes_list([f"slow{v}".encode() for v in
                                                    values[slow]]))
    want = [f"slow{v}" if v % 3 == 0 else f"{v:>5}" for v in values]
    assert _lines([merged]) == want
    odd = np.arange(1, rows, 2)
    even = np.arange(0, rows, 2)
    parts = [(odd, C.line_buffer([C.const(b"odd ", len(odd)), C.decimal(values[odd])])[0]),
             (even, C.line_buffer([C.decimal(values[even], 9)])[0])]
    got = bytes(C.interleave(parts, rows)).decode().split("\n")[:-1]
    assert got == [f"odd {v}" if i % 2 else f"{v:>9}" for i, v in enumerate(values)]
