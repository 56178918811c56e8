"""Text lines built a column at a time with numpy: how streaming tools write a million
events a second without touching one event at a time in Python.

A *piece* is one field of every line: a (rows, width) uint8 array in which a NUL byte
means "no character here" (text is left-aligned in its columns, numbers right-aligned,
the rest of the column is NUL). No output line ever holds a NUL byte: strings that
contain one are not plain (safe_text_rows) and are escaped by the slow path. So pieces
are laid side by side with plain column copies into one buffer, and the NULs are
dropped from all the lines at once when they are written (`lines`: one C pass,
bytearray.translate, ~1 ns a byte): no masks, no per-row positions, no scatter.

Chosen by measurement (recorded batches of 16,384 `lumos trace` rows, this VM): the
earlier layout (a bool mask per piece, compacted with buf[keep]) cost ~300 ns a row to
lay out and compact, the NUL layout ~120 ns. Dropping the NULs of 16,384 lines of 140
bytes: bytearray.translate 2.2 ms, numpy buf[buf != 0] 3.0 ms, bytes.replace 7 ms.

Pieces come from numbers (`decimal`, `fixed_digits`), constants (`const`), byte
buffers (`text`) and, for the few rows that need Python (escaping), `from_bytes_list`
merged in with `merge`.

Why numpy and not a DataFrame library: polars formats as fast, but importing it costs
~50 MB of resident memory more than numpy (measured here: numpy 25 MB, polars after one
write 75 MB), and the streaming tools must stay under bpftrace's ~90 MB in all.
"""

from __future__ import annotations

import numpy as np

_POW10 = np.array([10 ** k for k in range(20)], dtype=np.uint64)
_DIGIT0 = ord("0")
SPACE = ord(" ")
NUL = 0


class Piece:
    __slots__ = ("buf", "full")

    def __init__(self, buf: np.ndarray, full: bool = False):
        self.buf = buf            # (rows, width) uint8; NUL: no character
        self.full = full          # True: no NUL anywhere (every byte is text)

    @property
    def rows(self) -> int:
        return self.buf.shape[0]

    @property
    def width(self) -> int:
        return self.buf.shape[1]

    def take(self, rows) -> Piece:
        return Piece(self.buf[rows], self.full)


def const(text: bytes, rows: int) -> Piece:
    """The same text on every row."""
    return Piece(np.broadcast_to(np.frombuffer(text, np.uint8), (rows, len(text))), True)


def empty(rows: int) -> Piece:
    """No text on any row."""
    return Piece(np.zeros((rows, 0), np.uint8), True)


def _is_const(buf: np.ndarray) -> bool:
    return buf.strides[0] == 0


def _index_type(limit: int):
    """The narrowest unsigned type holding 0..limit: byte-wide compares are SIMD-wide."""
    return np.uint8 if limit < 256 else np.uint16 if limit < 65536 else np.int64


def _prefix_mask(lens: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) bool: column < lens[row]."""
    t = _index_type(width)
    return np.arange(width, dtype=t) < np.minimum(np.maximum(lens, 0), width).astype(t)[:, None]


def text(buf: np.ndarray, lens: np.ndarray) -> Piece:
    """Bytes as they are (the caller made sure they need no quoting), lens[i] of row i."""
    lens = np.asarray(lens)
    width = min(buf.shape[1], int(lens.max(initial=0)))
    x = np.array(buf[:, :width])                # a copy: the NULs go in below
    x *= _prefix_mask(lens, width)
    return Piece(x)


def plain_text(buf: np.ndarray, lens: np.ndarray, forbidden: bytes = b'"\\'
               ) -> tuple[Piece, np.ndarray]:
    """(the first lens[i] bytes of each row as a piece, rows that are plain: printable
    ASCII other than `forbidden`, which Go's strconv.Quote and JSON leave as they are).
    Rows that are not plain must be replaced (merge) before the piece is written."""
    lens = np.asarray(lens)
    n = buf.shape[0]
    width = min(buf.shape[1], int(lens.max(initial=0)))
    if width == 0:
        return Piece(np.zeros((n, 0), np.uint8), True), np.ones(n, bool)
    wide = min(buf.shape[1], (width + 7) & ~7)  # whole 8-byte words: see _rows_any
    x = np.array(buf[:, :wide])                 # a copy: the NULs go in below
    inside = _prefix_mask(lens, wide)
    bad = x - np.uint8(0x20)
    bad = bad >= np.uint8(0x7F - 0x20)          # control bytes, DEL, non-ASCII
    for b in forbidden:
        bad |= x == np.uint8(b)
    bad &= inside
    x *= inside                                 # past the length: no character
    return Piece(x[:, :width]), ~_rows_any(bad)


def _rows_any(a: np.ndarray) -> np.ndarray:
    """Rows of a (rows, width) bool/uint8 array with a nonzero byte; OR-ing 8-byte
    words column by column is several times faster than a.any(axis=1) on short rows."""
    a = np.ascontiguousarray(a)
    if a.shape[1] % 8:
        return a.any(axis=1)
    words = a.view(np.uint64)
    acc = words[:, 0].copy()
    for k in range(1, words.shape[1]):
        acc |= words[:, k]
    return acc != 0


def safe_text_rows(buf: np.ndarray, lens: np.ndarray, forbidden: bytes = b'"\\') -> np.ndarray:
    """Rows whose first lens[i] bytes are printable ASCII other than `forbidden`: text that
    Go's strconv.Quote and JSON both leave as it is."""
    return plain_text(buf, lens, forbidden)[1]


def fixed_digits(values: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) zero-padded decimal digits of non-negative values below 10**width."""
    out = np.empty((len(values), width), np.uint8)
    # 32-bit division is several times faster than 64-bit: use it when values fit
    small = width <= 9 or (len(values) and int(values.max()) < 1 << 32)
    rest = values.astype(np.uint32 if small else np.uint64)
    for k in range(width - 1, -1, -1):
        q = rest // 10
        out[:, k] = rest - q * 10
        rest = q
    out += _DIGIT0
    return out


def decimal(values: np.ndarray, width: int = 0) -> Piece:
    """Integers in decimal, '-' for negative ones, right-aligned in at least `width`
    characters (like printf's %*d: longer numbers stay whole); width 0: no padding."""
    n = len(values)
    if n and (values == values[0]).all():  # one process, one thread: format once
        return const(f"{int(values[0]):>{width}}".encode(), n)
    if values.dtype.kind == "i" and (values < 0).any():
        v = values.astype(np.int64)
        neg = v < 0
        mag = np.where(neg, -(v + 1), v).astype(np.uint64) + neg.astype(np.uint64)
    else:
        neg = None
        mag = values.astype(np.uint64)
    nd = np.maximum(np.searchsorted(_POW10, mag, side="right"), 1)
    lens = nd + neg if neg is not None else nd
    w = max(int(lens.max(initial=1)), width)
    digits = int(nd.max(initial=1))
    buf = np.empty((n, w), np.uint8)
    buf[:, w - digits:] = fixed_digits(mag, digits)
    # what is left of a row's number: spaces up to `width`, no character beyond
    fill = np.where(np.arange(w) >= w - width, SPACE, NUL).astype(np.uint8)
    buf[:, :w - digits] = fill[:w - digits]
    if int(nd.min()) != digits:  # leading zeros off
        lead = np.arange(w, dtype=np.uint8) < (w - nd).astype(np.uint8)[:, None]
        np.copyto(buf, np.broadcast_to(fill, buf.shape), where=lead)
    if neg is not None:
        rows = np.flatnonzero(neg)
        buf[rows, w - lens[rows]] = ord("-")
    return Piece(buf, w == width or int(lens.min()) >= w)


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def hexadecimal(values: np.ndarray) -> Piece:
    """Unsigned values as 0x-prefixed lowercase hex without leading zeros, like %#x."""
    n = len(values)
    v = values.astype(np.uint64)
    nd = np.ones(n, np.int64)
    for k in range(1, 16):
        nd += v >= np.uint64(1 << (4 * k))
    w = int(nd.max(initial=1))
    buf = np.empty((n, w + 2), np.uint8)
    rest = v.copy()
    for k in range(w + 1, 1, -1):
        buf[:, k] = _HEX[(rest & np.uint64(15)).astype(np.intp)]
        rest >>= np.uint64(4)
    cols = np.arange(w + 2)
    start = (w - nd)[:, None]
    buf[cols < start] = NUL           # "0x" goes just before the first digit
    buf[cols == start] = ord("0")
    buf[cols == start + 1] = ord("x")
    return Piece(buf, bool(int(nd.min()) == w))


def join(pieces: list[Piece]) -> Piece:
    """Each row's pieces side by side."""
    return Piece(np.hstack([p.buf for p in pieces]), all(p.full for p in pieces))


def line_buffer(pieces: list[Piece]) -> tuple[np.ndarray, bytearray, bool]:
    """The rows as lines, not yet compacted: ((rows, width) uint8 with the newline in
    the last column and NULs where there is no character, the bytearray under it,
    whether it has no NUL at all)."""
    n = pieces[0].rows
    pieces = _merge_consts([p for p in pieces if p.width])
    width = sum(p.width for p in pieces) + 1
    raw = bytearray(n * width)
    buf = np.frombuffer(raw, np.uint8).reshape(n, width)
    col = 0
    for p in pieces:  # column copies into one buffer: no intermediate joins
        if _is_const(p.buf):  # a constant: the same bytes on every row
            buf[:, col:col + p.width] = p.buf[0]
        else:
            buf[:, col:col + p.width] = p.buf
        col += p.width
    buf[:, col] = ord("\n")
    return buf, raw, all(p.full for p in pieces)


def _merge_consts(pieces: list[Piece]) -> list[Piece]:
    """Neighbouring constants as one: fewer, wider copies."""
    out: list[Piece] = []
    for p in pieces:
        if out and _is_const(p.buf) and _is_const(out[-1].buf):
            out[-1] = const(out[-1].buf[0].tobytes() + p.buf[0].tobytes(), p.rows)
        else:
            out.append(p)
    return out


def compact(raw: bytearray) -> bytearray:
    """Lines with their NULs (no character) dropped: one C pass over the buffer."""
    return raw.translate(None, b"\0")


def lines(pieces: list[Piece]) -> bytes | bytearray:
    """The rows as text lines, each ended by a newline."""
    _, raw, full = line_buffer(pieces)
    return raw if full else compact(raw)


def interleave(parts: list[tuple[np.ndarray, np.ndarray]], rows: int) -> bytes | bytearray:
    """Lines made group by group back in row order: parts are (row numbers, the group's
    line_buffer) of each group. Rows are copied whole into one buffer, then compacted."""
    if len(parts) == 1:
        return compact(bytearray(parts[0][1].tobytes()))
    width = max(p[1].shape[1] for p in parts)
    raw = bytearray(rows * width)  # zeroed: what a group's shorter rows leave is NUL
    buf = np.frombuffer(raw, np.uint8).reshape(rows, width)
    for which, group in parts:
        buf[which, :group.shape[1]] = group
    return compact(raw)


def from_bytes_list(items: list[bytes]) -> Piece:
    """A piece from per-row Python bytes (the slow path, for the few rows that need it)."""
    n = len(items)
    lens = np.fromiter((len(b) for b in items), np.int64, n)
    width = int(lens.max(initial=0))
    keep = np.arange(width) < lens[:, None]
    buf = np.zeros((n, width), np.uint8)
    buf[keep] = np.frombuffer(b"".join(items), np.uint8)
    return Piece(buf)


def merge(into: Piece, rows: np.ndarray, part: Piece) -> Piece:
    """`into` with the given rows replaced by `part`'s rows (widening as needed)."""
    width = max(into.width, part.width)
    buf = np.zeros((into.rows, width), np.uint8)
    buf[:, :into.width] = into.buf
    buf[rows] = NUL
    buf[rows, :part.width] = part.buf
    return Piece(buf)


def select(mask: np.ndarray, yes: Piece, no: Piece) -> Piece:
    """Row-wise choice between two pieces."""
    return merge(no, np.flatnonzero(mask), yes.take(mask))
