"""flow: call flow per goroutine, like BCC's uflow: '->' on entry, '<-' on return with the
duration, indented by depth within the goroutine. Goroutines interleave; each line
names its goroutine.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import replace

from lumos.output.clock import stamp_column, time_offset
from lumos.output.govalues import format_values, json_value
from lumos.output.jsonl import encode_json as _json
from lumos.output.units import format_duration, plural
from lumos.output.writeall import write_all
from lumos.probes.capture import HEADER_RECORD, shape_of
from lumos.probes.decode import Decoder
from lumos.probes.eventprog import Variant, attach_events
from lumos.probes.staging import StagedChannel
from lumos.probes.stream import Stream
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

FLOW_BATCH = 4096  # records per batch: the frame logic is a Python loop (~2 µs a record)
MAX_DEPTH = 256  # frames kept per goroutine; deeper, the oldest lose their durations
MAX_GOROUTINES = 65536  # goroutines followed at once (one that ended mid-call is dropped)


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p, interval=False)
    p.add_argument("--args", dest="show_args", action="store_true",
                   help="show decoded arguments on entry")
    add_strlen_argument(p, 32)
    add_ring_argument(p, default=32)  # decoded a record at a time: room for bursts


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
                v = Variant(kind, shape_of(f.args) if kind == "entry" and args.show_args
                            else (), goroutine=f.goroutine,
                            sp_delta=f.entry_sp_delta if kind == "entry" else
                            -8 if site.retprobe else 0)  # uretprobe (C): return addr popped
                vid = index.setdefault(v, len(variants))
                if vid == len(variants):
                    variants.append(v)
                sites.append(replace(site, variant=vid))
                meta.append((fi, kind))
        channel = StagedChannel(ring).open(s.stack)
        probes = s.enter(ExitStack())  # closed first at the end: no records race the drain
        record_size, attached = attach_events(variants, sites, channel, target.pid,
                                              "lumos_flow", probes)
        flow = Flow(functions, sites, variants, meta, args)
        s.banner(plural(len(functions), "function"),
                 dropped_note(unprobeable, "no instruction a uprobe can sit on"),
                 skipped=[x for a in attached for x in a.skipped])
        if not args.json:
            sys.stdout.write(f"{'TIME':<15} {'PID':>7} {'TID':>7} {'GOID':>7} FLOW\n")
        stream = Stream(channel, record_size, batch_records=FLOW_BATCH)
        stream.run(s.start(), flow.batch, flush=sys.stdout.flush, detach=probes.close)
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
        self.stacks: dict[tuple[int, int], list[tuple[int, int]]] = {}  # -> [(frame, ts)]
        self.trimmed: dict[tuple[int, int], int] = {}  # frames cut off below MAX_DEPTH
        self.out = sys.stdout

    def step(self, pid: int, tid: int, goid: int, frame: int, ts: int,
             entry: bool) -> tuple[int, int | None]:
        """(depth, duration of the call a return ends, or None) of one event."""
        key = (pid, goid or tid)
        frames = self.stacks.get(key)
        if frames is None:
            if len(self.stacks) >= MAX_GOROUTINES:  # goroutines that ended inside a call
                old = next(iter(self.stacks))
                del self.stacks[old]
                self.trimmed.pop(old, None)
            frames = self.stacks[key] = []
        trimmed = self.trimmed.get(key, 0)
        if entry:
            if goid:
                # A live caller's frame is shallower (frame = stack.hi - SP grows with
                # depth): frames as deep or deeper are calls a panic unwound (no RET).
                while frames and frames[-1][0] >= frame:
                    frames.pop()
            depth = trimmed + len(frames)
            frames.append((frame, ts))
            if len(frames) > MAX_DEPTH:
                del frames[0]
                self.trimmed[key] = trimmed + 1
            return depth, None
        # Pop to the matching frame: frames above it were left by a panic.
        duration = None
        match = next((i for i in range(len(frames) - 1, -1, -1) if frames[i][0] == frame),
                     None)
        if match is not None:
            depth = trimmed + match
            duration = ts - frames[match][1]
            del frames[match:]
        elif trimmed and not frames:  # the newest of the frames trimmed off
            depth = trimmed - 1
            self.trimmed[key] = depth
        else:
            depth = 0  # entered before tracing began
        if not frames and not self.trimmed.get(key):
            self.stacks.pop(key, None)
            self.trimmed.pop(key, None)
        return depth, duration

    def batch(self, batch) -> None:
        """A batch of records: the header columns with numpy, the frame logic in one
        tight loop, the lines written at once (values decoded only with --args)."""
        head = batch.records_as(HEADER_RECORD.dtype)
        if not len(head):
            return
        cols = [head[f].tolist() for f in ("ts_ns", "pid", "tid", "goid", "site", "frame")]
        raw = list(batch.records()) if self.args.show_args else None
        stamps = (None if self.args.json else
                  stamp_column(head["ts_ns"], self.offset).buf.tobytes().decode())
        out = []
        for i, (ts, pid, tid, goid, site, frame) in enumerate(zip(*cols, strict=True)):
            fi, kind = self.meta[site]
            entry = kind == "entry"
            depth, duration = self.step(pid, tid, goid, frame, ts, entry)
            name = self.functions[fi].name
            caps = self.functions[fi].args if entry and raw is not None else ()
            values = self.decoder.decode(raw[i]).values if caps else ()
            if self.args.json:
                obj = {"time": round(ts / 1e9 + self.offset, 6), "pid": pid, "tid": tid,
                       "goid": goid, "event": kind, "func": name, "depth": depth}
                if duration is not None:
                    obj["duration_ns"] = duration
                if caps:
                    obj["args"] = {c.name: json_value(c, v)
                                   for c, v in zip(caps, values, strict=True)}
                out.append(_json(obj))
                continue
            if entry:
                text = f"-> {name}"
                if caps:
                    text += f"({', '.join(format_values(caps, values))})"
            else:
                text = f"<- {name}"
                if duration is not None:
                    text += f" ({format_duration(duration)})"
            out.append(f"{stamps[15 * i:15 * i + 15]} {pid:>7} {tid:>7} {goid:>7} "
                       f"{'  ' * depth}{text}\n")
        write_all(self.out, "".join(out))
