"""Aligned text tables, the way BCC tools print them: a header row, left/right columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                 align: str = "", min_width: Sequence[int] = ()) -> str:
    """align: one 'l' or 'r' per column (default: numbers right, text left)."""
    cells = [[str(c) for c in row] for row in rows]
    ncols = len(headers)
    widths = [len(h) for h in headers]
    for i, w in enumerate(min_width):
        widths[i] = max(widths[i], w)
    for row in cells:
        for i, c in enumerate(row[:ncols]):
            widths[i] = max(widths[i], len(c))
    if not align:
        align = "".join("r" if rows and isinstance(rows[0][i], int | float) else "l"
                        for i in range(ncols))

    def fmt(row: Sequence[str]) -> str:
        parts = [(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
                 for i, c in enumerate(row[:ncols])]
        return " ".join(parts).rstrip()

    return "\n".join([fmt(list(headers))] + [fmt(r) for r in cells])


def print_table(headers, rows, out: TextIO, **kw) -> None:
    print(format_table(headers, rows, **kw), file=out, flush=True)
