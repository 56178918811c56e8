"""Server-request lines a batch at a time (output/columns): the fast path of lumos http.

A busy server sends thousands of records a second; decoding each in Python costs ~10 µs
of lumos's CPU per request, taken from the traced program on a small machine. Rows that
are served requests with plain ASCII paths (no quote, backslash or control byte, not cut)
are formatted here with numpy, column by column, exactly as reqlines.Printer would;
every other row (client calls, paths that need escaping or were cut) goes through the
Printer, and the lines are put back in record order.
"""

from __future__ import annotations

import numpy as np

from lumos.output import columns as C
from lumos.output.clock import epoch_column, stamp_column
from lumos.output.writeall import write_all

SERVER = 1                   # probes.reqrecord.SERVER
F_STATUS, F_BYTES, F_PARENT, F_H2 = 1, 2, 8, 64
FAST_FLAGS = F_PARENT


def fast_rows(rec) -> np.ndarray:
    """Rows of a structured array of HTTP records the column path can write."""
    plen = rec["ppath_len"].astype(np.int64)
    mlen = rec["pmethod_len"].astype(np.int64)
    path = _bytes(rec["ppath"])
    method = _bytes(rec["pmethod"])
    ok = ((rec["kind"] == SERVER) & ((rec["flags"] & FAST_FLAGS) == FAST_FLAGS)
          & (plen <= path.shape[1]) & (mlen <= method.shape[1]) & (plen > 0))
    ok &= C.safe_text_rows(path, np.minimum(plen, path.shape[1]))
    ok &= C.safe_text_rows(method, np.minimum(mlen, method.shape[1]))
    route = _bytes(rec["proute"])
    rlen = rec["proute_len"].astype(np.int64)
    ok &= (rlen < 1 << 16) & C.safe_text_rows(route, np.minimum(rlen & 0xFFFF, route.shape[1]))
    return ok


def _bytes(col) -> np.ndarray:
    """A V<n> field as a (rows, n) uint8 array."""
    return np.ascontiguousarray(col).view(np.uint8).reshape(len(col), -1)


def _status(rec, known_flag: int, field: str, width: int, json: bool) -> C.Piece:
    values = rec[field].astype(np.int64)
    if field == "status":   # a handler that wrote nothing answered 200
        values = np.where(values == 0, 200, values)
    known = (rec["flags"] & known_flag) != 0
    num = C.decimal(values, width)
    if known.all():
        return num
    unknown = C.const(b"null" if json else f"{'?':>{width}}".encode(), len(values))
    return C.select(known, num, unknown)


def server_pieces(rec, offset: float, json: bool) -> list[C.Piece]:
    n = len(rec)
    path = C.text(_bytes(rec["ppath"]), rec["ppath_len"])
    method = C.text(_bytes(rec["pmethod"]), rec["pmethod_len"])
    h2 = (rec["flags"] & F_H2) != 0
    if json:
        route_len = rec["proute_len"].astype(np.int64) & 0xFFFF
        route = C.text(_bytes(rec["proute"]), route_len)
        proto = C.select(h2, C.const(b'"HTTP/2"', n), C.const(b'"HTTP/1"', n))
        return [C.const(b'{"time":', n), epoch_column(rec["ts"], offset),
                C.const(b',"pid":', n), C.decimal(rec["pid"]),
                C.const(b',"tid":', n), C.decimal(rec["tid"]),
                C.const(b',"goid":', n), C.decimal(rec["goid"]),
                C.const(b',"duration_ns":', n), C.decimal(rec["dur"]),
                C.const(b',"kind":"server","proto":', n), proto,
                C.const(b',"method":"', n), method, C.const(b'","path":"', n), path,
                C.const(b'","route":"', n), route, C.const(b'","status":', n),
                _status(rec, F_STATUS, "status", 0, True), C.const(b',"bytes":', n),
                _status(rec, F_BYTES, "bytes", 0, True), C.const(b',"request_id":', n),
                C.decimal(rec["req_id"]), C.const(b"}", n)]
    sp = C.const(b" ", n)
    kind = C.select(h2, C.const(b"HTTP/2", n), C.const(b"HTTP/1", n))
    return [stamp_column(rec["ts"], offset), sp, C.decimal(rec["pid"], 7), sp,
            C.decimal(rec["goid"], 7), sp, kind, sp, _pad(method, 6), sp,
            _status(rec, F_STATUS, "status", 6, False), sp,
            _status(rec, F_BYTES, "bytes", 8, False), sp, _ms(rec["dur"]), sp, path]


def _pad(piece: C.Piece, width: int) -> C.Piece:
    """Left-aligned text padded to at least `width` characters (like %-6s)."""
    buf = np.full((piece.rows, max(width, piece.width)), C.NUL, np.uint8)
    buf[:, :width] = C.SPACE
    text = piece.buf
    np.copyto(buf[:, :piece.width], text, where=text != C.NUL)
    return C.Piece(buf, piece.width <= width)


def _ms(dur_ns) -> C.Piece:
    """Milliseconds with 2 decimals, right-aligned in 8 (reqlines.format_ms's rule:
    hundredths rounded half up, in integers)."""
    hundredths = (dur_ns.astype(np.int64) + 5000) // 10000
    whole = C.decimal(hundredths // 100, 5)
    frac = C.fixed_digits(hundredths % 100, 2)
    n = len(dur_ns)
    return C.join([whole, C.const(b".", n), C.Piece(frac, True)])


class ColumnWriter:
    """Gathers the batches of one poll and writes their lines at flush: the ring hands
    over records in small batches when producers are busy (a chunk ends at a record
    still being written), and the column path costs ~1 ms a call whatever its rows."""

    def __init__(self, record, printer, decoder, out):
        self.record, self.printer, self.decoder, self.out = record, printer, decoder, out
        self.pending: list = []

    def add(self, batch) -> None:
        # a copy: the ring reader reuses a batch's memory for the next read
        self.pending.append(batch.records_as(self.record.dtype).copy())

    def flush(self) -> None:
        if self.pending:
            recs, self.pending = self.pending, []
            rec = recs[0] if len(recs) == 1 else np.concatenate(recs)
            write_records(rec, self.printer, self.decoder, self.out)


def write_batch(batch, record, printer, decoder, out) -> None:
    """One batch's lines (see write_records)."""
    write_records(batch.records_as(record.dtype), printer, decoder, out)


def write_records(rec, printer, decoder, out) -> None:
    """The lines of records (a structured array) in order: the fast rows with numpy in
    one go, the others through the Printer (one line per record: no --stack here),
    merged back in order."""
    import io
    n = len(rec)
    if n == 0:
        return
    ok = fast_rows(rec)
    fast = np.flatnonzero(ok)
    json_out = printer.args.json
    if len(fast) == n:
        write_all(out, C.lines(server_pieces(rec, printer.offset, json_out)).decode("ascii"))
        return
    saved, lines = printer.out, []
    try:
        for i in np.flatnonzero(~ok).tolist():
            printer.out = io.StringIO()
            printer.event(decoder.decode(rec[i:i + 1].tobytes()))
            lines.append(printer.out.getvalue().encode())
    finally:
        printer.out = saved
    if len(fast) == 0:
        write_all(out, b"".join(lines).decode())
        return
    buf, _, _ = C.line_buffer(server_pieces(rec[fast], printer.offset, json_out))
    parts = [(fast, buf), (np.flatnonzero(~ok), C.from_bytes_list(lines).buf)]
    write_all(out, C.interleave(parts, n).decode())
