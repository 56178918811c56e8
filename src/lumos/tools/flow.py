"""flow: call flow per goroutine, like BCC's uflow: '->' on entry, '<-' on return with the
duration, indented by depth within the goroutine. Goroutines interleave; each line
names its goroutine.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from lumos.output.clock import Clock, time_offset
from lumos.output.govalues import format_values, json_value
from lumos.output.jsonl import write_json
from lumos.output.units import format_duration, plural
from lumos.probes.attach import attach_sites
from lumos.probes.channel import EventChannel
from lumos.probes.decode import Decoder
from lumos.probes.eventprog import EventProgram, Variant
from lumos.probes.stream import run_stream
from lumos.session.args import (
    add_ring_argument,
    add_strlen_argument,
    add_target_arguments,
    add_timing_arguments,
    ring_bytes,
)
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.plan import dropped_note, plan

HELP = "call flow per goroutine: -> entry, <- return with duration, indented by depth"
EXAMPLES = """\
  lumos flow -p 1234 'main.*'                 # every main.* call, per goroutine
  lumos flow -p 1234 'main.*' --args          # with decoded arguments
  lumos flow -c './app' 'main.*' 'net/http.*' --json
"""

MAX_DEPTH = 256  # frames kept per goroutine; deeper, the oldest lose their durations
MAX_GOROUTINES = 65536  # goroutines followed at once (one that ended mid-call is dropped)


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p, interval=False)
    p.add_argument("--args", dest="show_args", action="store_true",
                   help="show decoded arguments on entry")
    add_strlen_argument(p, 32)
    add_ring_argument(p)


def run(args) -> int:
    ring = ring_bytes(args)  # checked before anything is attached
    with Session(args) as s:
        target = s.target
        unprobeable: list[str] = []
        functions = plan(target, target.patterns, args.strlen, dropped=unprobeable)
        variants: list[Variant] = []
        index: dict[Variant, int] = {}
        sites, meta = [], []
        for fi, f in enumerate(functions):
            for site, kind in [(f.entry, "entry")] + [(s, "return") for s in f.exits]:
                v = Variant(kind, f.args if kind == "entry" and args.show_args else (),
                            goroutine=f.goroutine,
                            sp_delta=f.entry_sp_delta if kind == "entry" else 0)
                vid = index.setdefault(v, len(variants))
                if vid == len(variants):
                    variants.append(v)
                sites.append(replace(site, variant=vid))
                meta.append((fi, kind))
        channel = EventChannel(ring).open(s.stack)
        program = EventProgram(variants, channel, target.pid, "lumos_flow")
        attached = attach_sites(program.build, sites, target.pid, s.stack)
        flow = Flow(functions, sites, variants, meta, args)
        s.banner(plural(len(functions), "function"),
                 dropped_note(unprobeable, "no instruction a uprobe can sit on"),
                 skipped=attached.skipped)
        if not args.json:
            sys.stdout.write(f"{'TIME':<15} {'PID':>7} {'TID':>7} {'GOID':>7} FLOW\n")
        stream = run_stream(channel, s.start(), flow.handle, program.record_size,
                            out=sys.stdout)
        report_lost(stream, args.json)
    return 0


class Flow:
    """Keeps, per goroutine, the stack of frames it is in, to indent and time returns."""

    def __init__(self, functions, sites, variants, meta, args):
        self.functions = functions
        self.sites = sites
        self.variants = variants
        self.meta = meta
        self.args = args
        self.decoder = Decoder(sites, variants)
        self.offset = time_offset()
        self.clock = Clock(self.offset)
        self.stacks: dict[tuple[int, int], list[tuple[int, int]]] = {}  # -> [(frame, ts)]
        self.trimmed: dict[tuple[int, int], int] = {}  # frames cut off below MAX_DEPTH
        self.out = sys.stdout

    def handle(self, rec) -> None:
        ev = self.decoder.decode(rec)
        fi, kind = self.meta[ev.site]
        name = self.functions[fi].name
        key = (ev.pid, ev.goid or ev.tid)
        frames = self.stacks.get(key)
        if frames is None:
            if len(self.stacks) >= MAX_GOROUTINES:  # goroutines that ended inside a call
                old = next(iter(self.stacks))
                del self.stacks[old]
                self.trimmed.pop(old, None)
            frames = self.stacks[key] = []
        trimmed = self.trimmed.get(key, 0)
        duration_ns = None
        if kind == "entry":
            if ev.goid:
                # A live caller's frame is shallower (frame = stack.hi - SP grows with
                # depth): frames as deep or deeper are calls a panic unwound (no RET).
                while frames and frames[-1][0] >= ev.frame:
                    frames.pop()
            depth = trimmed + len(frames)
            frames.append((ev.frame, ev.ts_ns))
            if len(frames) > MAX_DEPTH:
                del frames[0]
                self.trimmed[key] = trimmed + 1
        else:
            # Pop to the matching frame: frames above it were left by a panic.
            match = next((i for i in range(len(frames) - 1, -1, -1)
                          if frames[i][0] == ev.frame), None)
            if match is not None:
                depth = trimmed + match
                duration_ns = ev.ts_ns - frames[match][1]
                del frames[match:]
            elif trimmed and not frames:  # the newest of the frames trimmed off
                depth = trimmed - 1
                self.trimmed[key] = depth
            else:
                depth = 0  # entered before tracing began
            if not frames and not self.trimmed.get(key):
                self.stacks.pop(key, None)
                self.trimmed.pop(key, None)
        caps = self.variants[self.sites[ev.site].variant].captures
        if self.args.json:
            obj = {"time": round(ev.ts_ns / 1e9 + self.offset, 6), "pid": ev.pid,
                   "tid": ev.tid, "goid": ev.goid, "event": kind, "func": name,
                   "depth": depth}
            if duration_ns is not None:
                obj["duration_ns"] = duration_ns
            if caps:
                obj["args"] = {c.name: json_value(c, v)
                               for c, v in zip(caps, ev.values, strict=True)}
            write_json(obj, self.out, flush=False)
            return
        stamp = self.clock.stamp(ev.ts_ns)
        indent = "  " * depth
        if kind == "entry":
            text = f"-> {name}"
            if caps:
                text += f"({', '.join(format_values(caps, ev.values))})"
        else:
            text = f"<- {name}"
            if duration_ns is not None:
                text += f" ({format_duration(duration_ns)})"
        self.out.write(f"{stamp:<15} {ev.pid:>7} {ev.tid:>7} {ev.goid:>7} {indent}{text}\n")
