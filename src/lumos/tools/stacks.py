"""stacks: the distinct stacks that reach functions, counted in the kernel (BCC's stackcount).

Each entry probe takes a stack id (bpf_get_stackid, frame pointers) and bumps a counter
per (process, stack); only the distinct stacks cross to user space, at the end or each
-i interval. Go frames come with inlined calls expanded and file:line (pclntab).
"""

from __future__ import annotations

import dataclasses
import json
import sys

from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.errors import UsageError
from lumos.output.stackout import add_output_arguments, print_stacks, write_outputs
from lumos.output.units import plural
from lumos.probes.attach import attach_sites
from lumos.probes.stackcount import StackMaps, StackOptions, read_counts, stack_program
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.session import Session
from lumos.targets.plan import plan
from lumos.targets.stacks import StackSymbolizer, merge_samples

HELP = "count the distinct stacks that call functions, in the kernel (BCC's stackcount)"
EXAMPLES = """\
  lumos stacks ./server main.prepareAnswer          # who calls it, and how often
  lumos stacks -p 1234 'runtime.mallocgc' -d 5      # allocation paths for 5 seconds
  lumos stacks -p 1234 'main.*' --pprof s.pb.gz     # as a pprof profile (go tool pprof)
  lumos stacks -p 1234 'net/http.*' --svg s.svg     # as a flame graph
  lumos stacks -c './prog' 'libc:malloc' --folded s.txt   # folded, for other tools
"""


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p)
    add_output_arguments(p)
    p.add_argument("-P", "--per-pid", action="store_true", help="show the process of each "
                   "stack (stacks are always kept apart per process)")
    p.add_argument("--top", type=int, metavar="N", help="print only the N most frequent")


def run(args) -> int:
    with Session(args) as s:
        target = s.target
        planned = plan(target, target.patterns, strlen=0, want_results=False)
        if not planned:
            raise UsageError("no matching function can be probed")
        deltas = sorted({f.entry_sp_delta for f in planned})
        sites = [dataclasses.replace(f.entry, variant=deltas.index(f.entry_sp_delta))
                 for f in planned]
        maps = StackMaps.create(s.stack)
        opt = StackOptions(user=True, kernel=False, caller_fix=True, tgid=target.pid)
        attached = attach_sites(lambda at: stack_program(maps, opt, BPF_PROG_TYPE_KPROBE, at,
                                                         tuple(deltas)),
                                sites, target.pid, s.stack)
        s.banner(f"stacks of {plural(len(planned), 'function')}", skipped=attached.skipped)
        sym = StackSymbolizer(target.exe)
        s.start()
        sym.watch(target.pid)
        s.report_intervals(lambda: read_counts(maps), lambda: read_counts(maps, clear=True),
                           lambda counts: report(counts, sym, args))
    return 0


def report(counts, sym: StackSymbolizer, args) -> None:
    samples = merge_samples(sym.samples(counts, lambda c: [c.count]))
    out = sys.stdout
    if args.json:
        for smp in sorted(samples, key=lambda x: -x.values[0]):
            out.write(json.dumps({"pid": smp.pid, "comm": smp.comm, "count": smp.values[0],
                                  "stack": [dict(function=f.function, file=f.file,
                                                 line=f.line, inlined=f.inlined)
                                            for loc in smp.locations for f in loc.frames]})
                      + "\n")
        out.flush()
    else:
        print_stacks(samples, 0, out, args.top, args.per_pid)
    write_outputs(args, samples, [("calls", "count")], title="lumos stacks",
                  count_name="calls", comm_root=args.per_pid)
