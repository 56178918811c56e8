"""faults: minor and major page faults per process, counted in the kernel.

From the software perf events the kernel raises where it counts a task's min_flt and
maj_flt (the numbers getrusage(2), ps and /proc/PID/stat show), with a BPF program on
each CPU that counts per (pid, comm). Major faults are the ones that waited for I/O: a
file page read from disk, or an anonymous page read back from swap (lumos swapin).
"""

from __future__ import annotations

import sys

from lumos.output.kcounts import report_proc_counts
from lumos.probes.proccount import FaultsProbe
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.kernel import (
    add_kernel_intervals,
    kernel_target,
    report_loop,
    resolve_intervals,
)
from lumos.session.session import Session

HELP = "count minor and major page faults per process (perf software events)"
EXAMPLES = """\
  lumos faults                  # faults per process, at Ctrl-C
  lumos faults 1                # every second
  lumos faults -p 1234 1 10     # one process, every second, 10 times
  lumos faults -c './app'       # a command, from exec to exit
  lumos faults -T -d 10 --json  # JSON lines after 10 seconds
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
        probe = FaultsProbe(s.target.pid).attach(s.stack)
        s.banner("page faults")
        s.start()
        report_loop(s, probe.counter.take_deltas,
                    lambda rows, final: report_proc_counts(rows, ["MINOR", "MAJOR"],
                                                           args.json, not args.notime,
                                                           sys.stdout))
    return 0
