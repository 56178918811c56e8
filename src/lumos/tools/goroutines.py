"""goroutines: every goroutine created and ended, with who created it and where it starts.

runtime.newproc1(fn *funcval, callergp *g, callerpc uintptr, ...) *g runs on the
system stack for each `go` statement. At its entry lumos reads fn.fn (the new
goroutine's start PC), callergp.goid (the parent) and callerpc (the creating
function); at its RETs the result's goid (the child). Entry and RET pair up by thread
and frame. runtime.goexit1 runs on each goroutine that ends: its goid is the header's.

--leaks keeps the goroutines created while tracing that have not ended, and prints
them grouped by start function with counts and ages (on exit, or every -i seconds).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from lumos.errors import UsageError
from lumos.output.clock import Clock, time_offset
from lumos.output.jsonl import write_json
from lumos.output.table import print_table
from lumos.output.units import format_duration
from lumos.probes.attach import attach_sites
from lumos.probes.channel import EventChannel
from lumos.probes.decode import Decoder
from lumos.probes.eventprog import EventProgram
from lumos.probes.stream import run_stream
from lumos.session.args import add_ring_argument, add_timing_arguments, ring_bytes
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.goroutine_sites import goroutine_sites
from lumos.targets.symbolize import Symbolizer

HELP = "goroutine creations (parent, creator, start function) and exits; --leaks"
EXAMPLES = """\
  lumos goroutines -p 1234                 # each go statement and each goroutine's end
  lumos goroutines -p 1234 --leaks -i 10   # every 10 s: goroutines still alive, grouped
  lumos goroutines -c './app' --leaks      # what a program left running when it exited
"""

def add_arguments(p) -> None:
    p.add_argument("args", nargs="*", metavar="TARGET", help="a Go binary (or use -p/-c)")
    p.add_argument("-p", "--pid", type=int, help="trace this process only")
    p.add_argument("-c", "--command", metavar="CMD", help="start CMD and trace it")
    add_timing_arguments(p)
    p.add_argument("--leaks", action="store_true",
                   help="print goroutines created while tracing that are still alive")
    p.add_argument("--quiet", action="store_true", help="with --leaks: no per-event lines")
    add_ring_argument(p, default=4)


def run(args) -> int:
    if len(args.args) > (0 if args.pid is not None or args.command else 1):
        raise UsageError("goroutines follows every goroutine and takes no patterns: give "
                         "a Go binary, -p PID or -c CMD")
    with Session(args, need_patterns=False) as s:
        target = s.target
        if target.exe is None:
            raise UsageError("give a Go binary, -p PID or -c CMD")
        sites, variants = goroutine_sites(target.exe)
        channel = EventChannel(ring_bytes(args)).open(s.stack)
        program = EventProgram(variants, channel, target.pid, "lumos_goroutines")
        attached = attach_sites(program.build, sites, target.pid, s.stack)
        tracker = Tracker(sites, variants, args, target)
        s.banner("goroutines", skipped=attached.skipped)
        if not args.json and not args.quiet:
            sys.stdout.write(f"{'TIME':<15} {'PID':>7} {'PARENT':>7}    {'GOID':<7} EVENT\n")
        runner = s.start()
        if target.launched:
            tracker.symbolizer(target.pid).use_maps(target.launched.maps)
        stream = run_stream(channel, runner, tracker.handle, program.record_size,
                            on_tick=tracker.report_leaks if args.leaks else None,
                            interval=args.interval, out=sys.stdout)
        if args.leaks:
            ended = runner.target_note or ("the command exited" if runner.stop_reason ==
                                           "command exited" else None)
            tracker.report_leaks(ended)
        tracker.report_unpaired()
        report_lost(stream, args.json)
    return 0


@dataclass
class Goroutine:
    goid: int
    parent: int
    start: str
    creator: str
    born_ns: int


class Tracker:
    def __init__(self, sites, variants, args, target):
        self.decoder = Decoder(sites, variants)
        self.kinds = [variants[s.variant].kind for s in sites]
        self.args = args
        self.offset = time_offset()
        self.clock = Clock(self.offset)
        self.symbolizers: dict[int, Symbolizer] = {}
        self.exe = target.exe
        self.pending: dict[tuple[int, int, int], tuple] = {}   # (pid, tid, frame) -> create
        self.unpaired = 0  # creations not shown: one of their two records was lost
        self.alive: dict[tuple[int, int], Goroutine] = {}       # (pid, goid) -> goroutine
        self.out = sys.stdout
        self.last_ns = 0
        self._gobins: dict = {}                                  # path -> GoBinary
        self._starts: dict[tuple[str, int], str | None] = {}     # (path, vaddr) -> name

    def symbolizer(self, pid: int) -> Symbolizer:
        if pid not in self.symbolizers:
            self.symbolizers[pid] = Symbolizer(pid, self.exe)
        return self.symbolizers[pid]

    def _name(self, pid: int, pc: int) -> str:
        return self.symbolizer(pid).name(pc) or f"{pc:#x}"

    def _start_name(self, pid: int, pc: int) -> str:
        """The function Go's traceback shows the goroutine in: GoBinary.reported_start
        sees through the compiler's go-statement wrappers (main.main.gowrap1)."""
        where = self.symbolizer(pid).vaddr_in_file(pc)
        if where is not None:
            if where not in self._starts:
                from lumos.errors import LumosError
                from lumos.golang.gobinary import open_go_binary
                fn = None
                try:
                    if where[0] not in self._gobins:
                        self._gobins[where[0]] = open_go_binary(where[0])
                    fn = self._gobins[where[0]].reported_start(where[1])
                except LumosError:
                    self._gobins.setdefault(where[0], None)
                self._starts[where] = fn.name if fn is not None else None
            if self._starts[where]:
                return self._starts[where]
        return self._name(pid, pc)

    def handle(self, rec) -> None:
        ev = self.decoder.decode(rec)
        kind = self.kinds[ev.site]
        self.last_ns = max(self.last_ns, ev.ts_ns)
        if kind == "create":
            startpc, parent, callerpc = ev.values
            key = (ev.pid, ev.tid, ev.frame)
            self.unpaired += key in self.pending  # that one's return record was lost
            self.pending[key] = (startpc, parent, callerpc)
            return
        if kind == "created":
            info = self.pending.pop((ev.pid, ev.tid, ev.frame), None)
            if info is None:
                self.unpaired += 1  # its entry record was lost (or before tracing began)
                return
            startpc, parent, callerpc = info
            g = Goroutine(ev.values[0], parent, self._start_name(ev.pid, startpc),
                          self._name(ev.pid, callerpc), ev.ts_ns)
            self.alive[(ev.pid, g.goid)] = g
            self._emit(ev, "create", g.parent, g.goid, f"{g.creator} -> {g.start}", g)
            return
        g = self.alive.pop((ev.pid, ev.goid), None)
        what = g.start if g else "(created before tracing)"
        life = f" (lived {format_duration(ev.ts_ns - g.born_ns)})" if g else ""
        self._emit(ev, "exit", g.parent if g else None, ev.goid, what + life, g)

    def _emit(self, ev, kind, parent, goid, text, g) -> None:
        if self.args.quiet:
            return
        ts = ev.ts_ns / 1e9 + self.offset
        if self.args.json:
            obj = {"time": round(ts, 6), "pid": ev.pid, "event": kind, "goid": goid,
                   "parent": parent}
            if g is not None:
                obj.update(start=g.start, creator=g.creator)
                if kind == "exit":
                    obj["lived_ns"] = ev.ts_ns - g.born_ns
            write_json(obj, self.out)
            return
        stamp = self.clock.stamp(ev.ts_ns)
        arrow = "->" if kind == "create" else "  "
        par = "" if parent is None else str(parent)
        label = text if kind == "create" else f"exit {text}"
        self.out.write(f"{stamp:<15} {ev.pid:>7} {par:>7} {arrow} {goid:<7} {label}\n")

    def report_unpaired(self) -> None:
        """A creation is two records (newproc1's entry, its return): when the ring lost
        one, the other cannot be shown either; say how many, as lost events are."""
        self.unpaired += len(self.pending)
        self.pending.clear()
        if not self.unpaired:
            return
        if self.args.json:
            write_json({"unpaired": self.unpaired}, self.out)
        print(f"lumos: {self.unpaired} goroutine creations not shown (half of their "
              f"record was lost with the ring full)", file=sys.stderr)

    def report_leaks(self, ended: str | None = None) -> None:
        now = time.monotonic_ns()
        groups: dict[tuple[int, str, str], list[Goroutine]] = defaultdict(list)
        for (pid, _), g in self.alive.items():
            groups[(pid, g.start, g.creator)].append(g)
        ages = {k: now - min(x.born_ns for x in gs) for k, gs in groups.items()}
        if self.args.json:
            for (pid, start, creator), gs in sorted(groups.items(),
                                                    key=lambda t: (-len(t[1]), t[0][1])):
                write_json({"alive": len(gs), "pid": pid, "start": start, "creator": creator,
                            "oldest_ns": ages[(pid, start, creator)]}, self.out)
            self.out.flush()
            return
        rows = sorted(((pid, len(gs), format_duration(ages[(pid, start, creator)]), start,
                        creator) for (pid, start, creator), gs in groups.items()),
                      key=lambda r: (-r[1], r[3]))
        state = f"were still alive when {ended[0].lower() + ended[1:]}" if ended \
            else "are still alive"
        print(f"\n{len(self.alive)} goroutines created while tracing {state}"
              + (":" if rows else "."), file=self.out)
        if rows:
            print_table(["PID", "COUNT", "OLDEST", "START FUNCTION", "CREATED BY"], rows,
                        self.out, align="rrrll")
