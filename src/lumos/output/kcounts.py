"""Per-process counts the way BCC's swapin prints them: a time line, `COMM PID COUNT`
(%-16s %-7d %d), smallest first so the busiest end up next to the prompt."""

from __future__ import annotations

import time
from typing import TextIO

from lumos.output.jsonl import write_json


def report_proc_counts(rows, columns: list[str], json_out: bool, with_time: bool,
                       out: TextIO) -> None:
    """rows: (comm, pid, [count per column]); one column prints as BCC's COUNT, several
    as right-aligned 8-wide columns (faults: MINOR MAJOR)."""
    if json_out:
        now = round(time.time(), 6)
        for comm, pid, counts in rows:
            write_json({"time": now, "comm": comm, "pid": pid,
                        **{c.lower(): n for c, n in zip(columns, counts, strict=True)}}, out)
        return
    if with_time:
        print(time.strftime("%H:%M:%S"), file=out)
    wide = len(columns) > 1
    print(f"{'COMM':<16} {'PID':<7} " + " ".join(f"{c:>8}" if wide else c for c in columns),
          file=out)
    for comm, pid, counts in rows:
        print(f"{comm:<16} {pid:<7} " + " ".join(f"{n:>8}" if wide else str(n)
                                                 for n in counts), file=out)
    print(file=out, flush=True)
