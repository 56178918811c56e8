"""profile: a sampling CPU profiler on perf events, user and kernel stacks (BCC's profile).

A cpu-clock perf event on every CPU (software: works in VMs without a PMU) runs a BPF
program at -F Hz; it counts (process, user stack, kernel stack) in the kernel, and
nothing else crosses to user space until the end (or each -i). -p/-c keep one process
(a filter in the program, so threads created later are sampled too); no target samples
the whole machine, the idle task left out.

Frame pointers give the stacks. A sample in a function that has not pushed its frame
yet (a Go frameless leaf, a prologue) would lose its caller: the program also records
the word at SP when a CALL precedes it, and lumos keeps it where the pclntab says
nothing was pushed at the sampled PC.
"""

from __future__ import annotations

import json
import sys
import time
from functools import cache

from lumos.bpf import features
from lumos.bpf.links import attach_sampling
from lumos.bpf.prog import load_program
from lumos.bpf.sys import BPF_PROG_TYPE_PERF_EVENT
from lumos.errors import UsageError
from lumos.output.stackout import add_output_arguments, print_stacks, write_outputs
from lumos.probes.stackcount import StackMaps, StackOptions, read_counts, stack_program
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.session import Session
from lumos.targets.stacks import StackSymbolizer, merge_samples
from lumos.targets.target import Target

HELP = "sample CPU stacks (user and kernel) with perf events; pprof and flame graphs"
EXAMPLES = """\
  lumos profile -d 10                          # the whole machine for 10 s (Ctrl-C ends)
  lumos profile -p 1234 -F 99 --pprof cpu.pb.gz   # one process, as a pprof profile
  lumos profile -c './server' --svg cpu.svg    # start a command, flame graph at its end
  lumos profile -p 1234 --folded cpu.txt       # folded stacks (flamegraph.pl, inferno)
  lumos profile -p 1234 --user-only --top 5    # the 5 hottest stacks, no kernel frames
"""


def add_arguments(p) -> None:
    add_target_arguments(p, patterns=False)
    add_timing_arguments(p)
    add_output_arguments(p)
    p.add_argument("-F", "--frequency", type=int, default=49, metavar="HZ",
                   help="samples per second per CPU (default 49, as BCC's profile)")
    p.add_argument("--user-only", action="store_true", help="no kernel stacks")
    p.add_argument("--kernel-only", action="store_true", help="no user stacks")
    p.add_argument("--top", type=int, metavar="N", help="print only the N hottest stacks")


def run(args) -> int:
    if not 1 <= args.frequency <= 10000:
        raise UsageError(f"-F {args.frequency}: give 1 to 10000 samples per second")
    if args.user_only and args.kernel_only:
        raise UsageError("--user-only and --kernel-only exclude each other")
    args.args = []
    whole = args.pid is None and not args.command
    if whole:
        features.require("privileges")
    with Session(args, need_patterns=False,
                 target=Target(None) if whole else None) as s:
        target = s.target
        maps = StackMaps.create(s.stack)
        opt = StackOptions(user=not args.kernel_only, kernel=not args.user_only,
                           caller_fix=False, tgid=target.pid, skip_idle=whole,
                           sampled_caller=not args.kernel_only)
        prog = s.enter(load_program(stack_program(maps, opt, BPF_PROG_TYPE_PERF_EVENT,
                                                  name="lumos_profile")))
        links = s.enter(attach_sampling(prog, args.frequency))
        s.banner(f"CPU stacks at {args.frequency} Hz on {len(links.links)} CPUs"
                 + ("" if target.pid else " (all processes)"))
        sym = StackSymbolizer(target.exe)
        s.start()
        sym.watch(target.pid)
        started = time.time_ns()

        @cache
        def keep_caller(pid: int, leaf: int) -> bool:
            return sym.symbolizer(pid).sp_delta(leaf) == 0

        def read(clear=False):
            return read_counts(maps, clear, keep_caller)

        s.report_intervals(read, lambda: read(clear=True),
                           lambda counts: report(counts, sym, args, started, whole))
    return 0


def report(counts, sym: StackSymbolizer, args, started_ns: int, whole: bool) -> None:
    period = 1_000_000_000 // args.frequency
    samples = merge_samples(sym.samples(counts, lambda c: [c.count, c.count * period]))
    out = sys.stdout
    if args.json:
        for smp in sorted(samples, key=lambda x: -x.values[0]):
            out.write(json.dumps({"pid": smp.pid, "comm": smp.comm, "samples": smp.values[0],
                                  "stack": [dict(function=f.function, file=f.file,
                                                 line=f.line, inlined=f.inlined,
                                                 kernel=loc.kernel)
                                            for loc in smp.locations for f in loc.frames]})
                      + "\n")
        out.flush()
    else:
        print_stacks(samples, 0, out, args.top, show_pid=whole)
    total = sum(smp.values[0] for smp in samples)
    print(f"lumos: {total} samples", file=sys.stderr)
    write_outputs(args, samples, [("samples", "count"), ("cpu", "nanoseconds")],
                  title="lumos profile", count_name="samples", comm_root=whole,
                  period_type=("cpu", "nanoseconds"), period=period,
                  duration_ns=time.time_ns() - started_ns, time_ns=started_ns,
                  default_sample_type="cpu")
