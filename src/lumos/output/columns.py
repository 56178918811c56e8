"""Text lines built a column at a time with numpy: how streaming tools write a million
events a second without touching one event at a time in Python.

A *piece* is one field of every line: a (rows, width) uint8 array and a mask of the same
shape saying which of those bytes belong to the row's text (text is left-aligned in
its columns, numbers right-aligned). Pieces are joined side by side with plain column
copies, and the masks drop the unused bytes once, when the lines are written out
(`lines`): no per-row positions, no scatter.

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


class Piece:
    __slots__ = ("buf", "keep")

    def __init__(self, buf: np.ndarray, keep: np.ndarray | None):
        self.buf = buf            # (rows, width) uint8
        self.keep = keep          # (rows, width) bool, or None: every byte is kept

    @property
    def rows(self) -> int:
        return self.buf.shape[0]

    @property
    def width(self) -> int:
        return self.buf.shape[1]

    def mask(self) -> np.ndarray:
        return np.ones(self.buf.shape, bool) if self.keep is None else self.keep

    def take(self, rows) -> Piece:
        return Piece(self.buf[rows], None if self.keep is None else self.keep[rows])


def const(text: bytes, rows: int) -> Piece:
    """The same text on every row."""
    return Piece(np.broadcast_to(np.frombuffer(text, np.uint8), (rows, len(text))), None)


def empty(rows: int) -> Piece:
    """No text on any row."""
    return Piece(np.zeros((rows, 0), np.uint8), None)


def text(buf: np.ndarray, lens: np.ndarray) -> Piece:
    """Bytes as they are (the caller made sure they need no quoting), lens[i] of row i."""
    lens = np.asarray(lens)
    width = min(buf.shape[1], int(lens.max(initial=0)))
    buf = buf[:, :width]  # columns no row uses are never copied
    return Piece(buf, np.arange(width) < lens[:, None])


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
    if values.dtype.kind == "i":
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
    buf = np.full((n, w), SPACE, np.uint8)
    buf[:, w - digits:] = fixed_digits(mag, digits)
    cols = np.arange(w)
    buf[cols < (w - nd)[:, None]] = SPACE            # leading zeros off
    if neg is not None and neg.any():
        rows = np.flatnonzero(neg)
        buf[rows, w - lens[rows]] = ord("-")
    if w == width:  # every number fits the column: all of it is kept
        return Piece(buf, None)
    return Piece(buf, cols >= (w - np.maximum(lens, width))[:, None])


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
    keep = cols >= start            # "0x" goes just before the first digit
    buf[cols == start] = ord("0")
    buf[cols == start + 1] = ord("x")
    return Piece(buf, keep)


def join(pieces: list[Piece]) -> Piece:
    """Each row's pieces side by side."""
    return Piece(np.hstack([p.buf for p in pieces]),
                 None if all(p.keep is None for p in pieces)
                 else np.hstack([p.mask() for p in pieces]))


def line_parts(pieces: list[Piece]) -> tuple[np.ndarray, np.ndarray]:
    """The rows as text lines: (bytes of all lines, each line's length), newlines in."""
    n = pieces[0].rows
    pieces = _merge_consts([p for p in pieces if p.width])
    width = sum(p.width for p in pieces) + 1
    buf = np.empty((n, width), np.uint8)
    keep = np.ones((n, width), bool)  # one memset; only variable pieces write masks
    col = 0
    for p in pieces:  # column copies into one buffer: no intermediate joins
        if p.buf.strides[0] == 0:  # a constant: the same bytes on every row
            buf[:, col:col + p.width] = p.buf[0]
        else:
            buf[:, col:col + p.width] = p.buf
        if p.keep is not None:
            keep[:, col:col + p.width] = p.keep
        col += p.width
    buf[:, col] = ord("\n")
    keep[:, col] = True
    return buf[keep], keep.sum(axis=1)


def _merge_consts(pieces: list[Piece]) -> list[Piece]:
    """Neighbouring constants as one: fewer, wider copies."""
    out: list[Piece] = []
    for p in pieces:
        if out and p.keep is None and out[-1].keep is None and p.buf.strides[0] == 0 \
                and out[-1].buf.strides[0] == 0:
            out[-1] = const(out[-1].buf[0].tobytes() + p.buf[0].tobytes(), p.rows)
        else:
            out.append(p)
    return out


def lines(pieces: list[Piece]) -> bytes:
    """The rows as text lines, each ended by a newline."""
    return line_parts(pieces)[0].tobytes()


def interleave(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: int) -> bytes:
    """Lines made group by group back in row order: parts are (row numbers, line bytes,
    line lengths) of each group."""
    if len(parts) == 1:
        return parts[0][1].tobytes()
    data = np.concatenate([p[1] for p in parts])
    lens = np.empty(rows, np.int64)
    starts = np.empty(rows, np.int64)
    base = 0
    for which, _, group_lens in parts:
        lens[which] = group_lens
        starts[which] = base + np.cumsum(group_lens) - group_lens
        base += int(group_lens.sum())
    # byte j of the output comes from starts[row] + (j - the row's output start)
    out_starts = np.cumsum(lens) - lens
    index = np.repeat(starts - out_starts, lens) + np.arange(int(lens.sum()))
    return data[index].tobytes()


def safe_text_rows(buf: np.ndarray, lens: np.ndarray, forbidden: bytes = b'"\\') -> np.ndarray:
    """Rows whose first lens[i] bytes are printable ASCII other than `forbidden`: text that
    Go's strconv.Quote and JSON both leave as it is."""
    lens = np.asarray(lens)
    buf = buf[:, :int(lens.max(initial=0))]  # only the columns some row uses
    if buf.shape[1] == 0:
        return np.ones(len(lens), bool)
    bad = _unsafe_table(forbidden)[buf]   # one table lookup per byte
    bad &= np.arange(buf.shape[1]) < lens[:, None]
    return ~bad.any(axis=1)


_UNSAFE: dict[bytes, np.ndarray] = {}


def _unsafe_table(forbidden: bytes) -> np.ndarray:
    table = _UNSAFE.get(forbidden)
    if table is None:
        table = np.ones(256, bool)
        table[0x20:0x7F] = False
        table[list(forbidden)] = True
        _UNSAFE[forbidden] = table
    return table


def from_bytes_list(items: list[bytes]) -> Piece:
    """A piece from per-row Python bytes (the slow path, for the few rows that need it)."""
    n = len(items)
    lens = np.fromiter((len(b) for b in items), np.int64, n)
    width = int(lens.max(initial=0))
    keep = np.arange(width) < lens[:, None]
    buf = np.zeros((n, width), np.uint8)
    buf[keep] = np.frombuffer(b"".join(items), np.uint8)
    return Piece(buf, keep)


def merge(into: Piece, rows: np.ndarray, part: Piece) -> Piece:
    """`into` with the given rows replaced by `part`'s rows (widening as needed)."""
    width = max(into.width, part.width)
    buf = np.zeros((into.rows, width), np.uint8)
    buf[:, :into.width] = into.buf
    keep = np.zeros((into.rows, width), bool)
    keep[:, :into.width] = into.mask()
    buf[rows] = 0
    keep[rows] = False
    buf[rows, :part.width] = part.buf
    keep[rows, :part.width] = part.mask()
    return Piece(buf, keep)


def select(mask: np.ndarray, yes: Piece, no: Piece) -> Piece:
    """Row-wise choice between two pieces."""
    return merge(no, np.flatnonzero(mask), yes.take(mask))
