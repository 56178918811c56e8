"""`lumos trace TARGET 'usdt:PROVIDER:NAME'`: each hit of USDT probes with arg0..argN.

Reached from tools/trace.py when its patterns are USDT probes. Arguments print as
integers, sign-extended when the note says signed, as bpftrace does; `--str 0,1`
prints those arguments as the C strings they point to (USDT notes carry sizes, not
types, so lumos cannot tell a char * from a number: the user says which).
"""

from __future__ import annotations

import sys

from lumos.errors import UsageError
from lumos.output.clock import Clock, time_offset
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.stream import Stream
from lumos.probes.usdt import MAX_ARGS, UsdtEvents
from lumos.session.args import ring_bytes
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.usdt import attach_usdt, find_probes, is_usdt, parse_pattern, usdt_sites


def is_usdt_target(pattern: str) -> bool:
    """A first positional like usdt:/path:provider:name names its file: no binary."""
    return is_usdt(pattern) and parse_pattern(pattern).file is not None


def parse_str_args(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    out = []
    for part in text.replace("arg", "").split(","):
        try:
            n = int(part)
        except ValueError:
            raise UsageError(f"--str {text!r}: expected argument numbers, e.g. 0,1") from None
        if not 0 <= n < MAX_ARGS:
            raise UsageError(f"--str: arg{n} does not exist (USDT probes have at most "
                             f"{MAX_ARGS} arguments)")
        out.append(n)
    return tuple(out)


def run(args) -> int:
    strings = parse_str_args(getattr(args, "str", None))
    with Session(args, is_kernel_pattern=is_usdt_target) as s:
        target = s.target
        if not all(is_usdt(p) for p in target.patterns):
            raise UsageError("USDT probes and functions cannot be traced in one run yet: "
                             "give only usdt: patterns")
        probes = find_probes(target, target.patterns)
        sites, variants = usdt_sites(probes)
        channel = EventChannel(ring_bytes(args)).open(s.stack)
        program = UsdtEvents(variants, channel, target.pid if target.pid else None,
                             strings, min(args.strlen + 8, 4096) & ~7)
        att = attach_usdt(program.build, sites, target, s.stack,
                          semaphores=getattr(args, "semaphores", "kernel"))
        names = sorted({p.full_name for p in probes})
        s.banner(f"{len(names)} USDT probe(s) ({len(sites)} sites; semaphores: "
                 f"{att.semaphores})", att.notes, att.skipped)
        printer = UsdtPrinter(probes, program, strings, args.json)
        if not args.json:
            sys.stdout.write(f"{'TIME':<15} {'PID':>7} {'TID':>7} PROBE\n")
        runner = s.start()
        stream = Stream(channel, program.record_size)
        stream.run(runner, printer.batch, flush=sys.stdout.flush)
        report_lost(stream, args.json)
    return 0


class UsdtPrinter:
    def __init__(self, probes, program: UsdtEvents, strings, json_out: bool):
        self.probes = probes
        self.strings = program.strings  # sorted, as the record holds them
        self.json = json_out
        self.unpack = program.record.struct.unpack_from
        self.nargs = program.nargs
        self.clock = Clock(time_offset())
        self.offset = self.clock.offset
        self.out = sys.stdout

    def values(self, probe, fields) -> list:
        """(name, value) per argument of the probe: ints, or str for --str arguments."""
        out = []
        args = fields[5:5 + self.nargs]
        k = len(self.strings)
        rest = fields[5 + self.nargs:]
        texts = dict(zip(self.strings, zip(rest[:k], rest[k:], strict=True), strict=True))
        for i, a in enumerate(probe.args):
            if i in texts and texts[i][0] > 0:  # else no pointer to a string: the number
                raw = texts[i][1].split(b"\0", 1)[0]
                out.append((f"arg{i}", raw.decode("utf-8", "replace")))
            elif a.kind == "unreadable":
                out.append((f"arg{i}", None))
            else:
                v = args[i]
                out.append((f"arg{i}", v - (1 << 64) if a.signed and v >> 63 else v))
        return out

    def batch(self, batch) -> None:
        for rec in batch.records():
            fields = self.unpack(rec)
            ts, pid, tid, site, cpu = fields[:5]
            probe = self.probes[site]
            vals = self.values(probe, fields)
            if self.json:
                write_json({"time": float(f"{ts / 1e9 + self.offset:.6f}"), "pid": pid,
                            "tid": tid, "cpu": cpu, "probe": probe.full_name,
                            "args": dict(vals)}, self.out, flush=False)
                continue
            shown = ", ".join(f"{n}={_show(v)}" for n, v in vals)
            self.out.write(f"{self.clock.stamp(ts):<15} {pid:>7} {tid:>7} "
                           f"{probe.full_name}({shown})\n")


def _show(v) -> str:
    if v is None:
        return "?"
    if isinstance(v, str):
        return '"' + v.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"' \
            if not v.isprintable() else f'"{v}"'
    return str(v)
