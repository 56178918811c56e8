"""swapin: pages swapped in, per process (BCC's swapin): the programs using swap now.

BCC counts calls of swap_read_folio() with a kprobe; this kernel has no kprobes, so lumos
counts the kernel's own swap-in events (PSWPIN, ZSWPIN, SWPIN_ZERO) at the tracepoint
memcg:count_memcg_events, in the task that faulted (see lumos.probes.proccount).
"""

from __future__ import annotations

import sys

from lumos.output.kcounts import report_proc_counts
from lumos.probes.proccount import SwapinProbe
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.kernel import (
    add_kernel_intervals,
    kernel_target,
    report_loop,
    resolve_intervals,
)
from lumos.session.session import Session

HELP = "count pages swapped in, per process (who is using swap right now)"
EXAMPLES = """\
  lumos swapin                  # counts per process, at Ctrl-C
  lumos swapin 1                # every second, as BCC's swapin prints
  lumos swapin 5 12 -T          # every 5 s for a minute, without the time lines
  lumos swapin -p 1234 1        # one process, every second
  lumos swapin -d 30 --json     # JSON lines after 30 seconds
"""


def add_arguments(p) -> None:
    add_target_arguments(p, patterns=False)
    p.add_argument("-T", "--notime", action="store_true",
                   help="do not print the time (HH:MM:SS) before each report")
    add_timing_arguments(p)
    add_kernel_intervals(p)


def run(args) -> int:
    resolve_intervals(args)
    with Session(args, target=kernel_target(args)) as s:
        probe = SwapinProbe(s.target.pid).attach(s.stack)
        s.banner("swap-ins")
        s.start()
        report_loop(s, probe.counter.take_deltas,
                    lambda rows, final: report_proc_counts(rows, ["COUNT"], args.json,
                                                           not args.notime, sys.stdout))
    return 0
