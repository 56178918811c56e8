"""logs: every log call a Go program makes, including those its level filters out."""

from __future__ import annotations

import re
import struct
import sys

from lumos.bpf.maps import array_spec, create_map, hash_spec
from lumos.errors import UsageError
from lumos.golang.anyvalue import FOLLOWS, AnyDecoder
from lumos.golang.loggers import SEVERITIES, level_threshold
from lumos.golang.typedata import load_typedata
from lumos.output.clock import Clock, time_offset
from lumos.output.jsonl import write_json
from lumos.probes.attach import attach_sites
from lumos.probes.channel import EventChannel
from lumos.probes.eventprog import GoroutineSource
from lumos.probes.loglayout import FOLLOW_SIZES, RATE_WINDOW_NS
from lumos.probes.logprog import LogProbe, LogProgram, follow_value
from lumos.probes.pause import Paused, SiteSwitch
from lumos.probes.stream import POLL_S, Stream
from lumos.session.args import add_target_arguments, add_timing_arguments
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.logplan import open_logged, plan_logs
from lumos.tools.logs_out import LogLines

HELP = ("print each log call of a Go program (slog, zap, logrus, log), filtered ones "
        "included")
EXAMPLES = """\
  lumos logs -p 1234                       # every log call, DEBUG included, marked filtered
  lumos logs -p 1234 --level warn          # WARN and above only (filtered in the kernel)
  lumos logs -p 1234 --grep 'cache|timeout'  # messages matching a regular expression
  lumos logs -p 1234 --rate 100            # at most 100 calls/s per call site (rest counted)
  lumos logs -p 1234 --json > calls.jsonl  # JSON lines: time, level, msg, attrs, caller
  lumos logs ./server --list               # which loggers and log call sites it has
  lumos logs -c './app' --logger slog      # start ./app, only its log/slog calls
"""

TICK_S = 0.005  # how often a spent site is looked for (each poll of the ring): at 100,000
# calls a second, a site's quota of 1,000 is spent in 10 ms; each ms more costs 100 traps
LOGGERS = ("auto", "slog", "zap", "logrus", "log")


def add_arguments(p) -> None:
    add_target_arguments(p)
    add_timing_arguments(p, interval=False)
    p.add_argument("--level", default="debug", choices=SEVERITIES,
                   help="lowest level shown (default debug; filtered in the kernel)")
    p.add_argument("--logger", default="auto", choices=LOGGERS,
                   help="which logger to probe (default auto: all the binary has)")
    p.add_argument("--grep", metavar="RE", help="only messages matching this regular expression")
    p.add_argument("--rate", type=int, default=1000, metavar="N",
                   help="at most N calls a second per log site (default 1000; 0: no limit); "
                        "the excess is counted in the kernel and printed")
    p.add_argument("--no-pause", action="store_true",
                   help="keep every probe in when a site's --rate is spent, so every call "
                        "over the limit is counted (each one then costs the program a trap)")
    p.add_argument("--list", action="store_true",
                   help="list the loggers and log call sites of the binary, then exit")
    p.add_argument("--ring-mb", type=int, default=64,
                   help="ring buffer size in MiB (a power of two; default 64: about 17,000 "
                        "calls of up to 8 attributes)")


def run(args) -> int:
    if args.rate < 0:
        raise UsageError("--rate must be 0 (no limit) or a positive number of calls a second")
    if args.ring_mb < 1 or args.ring_mb & (args.ring_mb - 1):
        raise UsageError("--ring-mb must be a power of two")
    grep = None
    if args.grep:
        try:
            grep = re.compile(args.grep)
        except re.error as e:
            raise UsageError(f"--grep: {e}") from None
    if args.list:
        from lumos.tools.logs_list import list_sites
        return list_sites(args)
    with Session(args, need_patterns=False) as s:
        path = s.target.exe
        gb = open_logged(path)
        sites = plan_logs(gb, path, args.logger)
        if SEVERITIES.index(args.level) > SEVERITIES.index("info"):
            sites = [x for x in sites if x.func.logger != "log"]  # no levels: INFO-like
        if not sites:
            raise UsageError(f"{path}: no {'known' if args.logger == 'auto' else args.logger}"
                             f" logger found (lumos knows log/slog, zap and logrus)")
        layout = gb.runtime_layout()
        elf = gb.elf
        types = load_typedata(elf)
        follow = {}
        for name, desc in FOLLOWS.items():
            addr = types.find(name)
            if addr is not None:
                follow[addr] = follow_value(desc)
        attr_key = types.find("slog.Attr") or 0
        probes = [_probe(site, args.level, attr_key) for site in sites]
        channel = EventChannel(args.ring_mb << 20).open(s.stack)
        rate_map = s.enter(create_map(array_spec("lumos_lograte", 24, len(sites))))
        follow_map = s.enter(create_map(hash_spec("lumos_follow", 8, 8, 64)))
        for addr, value in follow.items():
            follow_map.update(struct.pack("<Q", addr), value)
        goroutine = GoroutineSource(layout.goid_offset, reg=layout.g_register)
        program = LogProgram(probes, channel, rate_map, follow_map, goroutine, s.target.pid,
                             args.rate)
        pausing = args.rate > 0 and not args.no_pause
        attached = attach_sites(program.build, [x.probe for x in sites], s.target.pid, s.stack,
                                separate=pausing)
        switch = SiteSwitch(attached, [x.probe for x in sites], rate_map, args.rate,
                            s.target.pid, RATE_WINDOW_NS) if pausing else None
        if switch:
            s.stack.callback(switch.close)
        loggers = sorted({x.func.logger for x in sites})
        notes = [f"{x.func.name}: no level-check site found; calls are not marked filtered"
                 for x in sites if x.verdict == "none"]
        s.banner(f"{', '.join(loggers)} log calls ({len(sites)} sites)", notes, attached.skipped)
        out = LogLines(sites, AnyDecoder(types, FOLLOW_SIZES), gb.source_lines(), grep,
                       Clock(time_offset()), args.json, sys.stdout)
        s.stack.callback(gb.close)  # the line tables read the file as calls come
        if not args.json:
            out.header()
        runner = s.start()
        stream = Stream(channel, program.record_size)
        stream.run(runner, out.batch, on_tick=switch.tick if switch else None,
                   interval=TICK_S if switch else None, flush=sys.stdout.flush,
                   detach=switch.close if switch else None,
                   poll_s=TICK_S if switch else POLL_S)
        _report_rate(rate_map, sites, switch, args.json)
        report_lost(stream, args.json)
    return 0


def _probe(site, severity: str, attr_key: int) -> LogProbe:
    lf = site.func
    value, at_least = level_threshold(lf.logger, severity)
    if lf.logger == "log":  # no levels: every call
        value = None
    kinds = {"Printf", "Fatalf", "Panicf"}
    return LogProbe(site.vaddr, site.sp_delta, site.level, lf.level_const, lf.level_size,
                    value, at_least, site.verdict, site.receiver, lf.level_chain, site.msg,
                    site.slices, lf.elem_kind, attr_key, site.closure,
                    tuple(e for e, k in site.closures if k in kinds),
                    tuple(e for e, k in site.closures if k == "Output"))


def _report_rate(rate_map, sites, switch: SiteSwitch | None, json_out: bool) -> None:
    """Calls dropped by --rate, per site: counted in the kernel, never silent; and the
    time each site stepped aside (its calls then neither shown nor counted)."""
    per: dict[str, int] = {}
    paused: dict[str, Paused] = {}
    for i, site in enumerate(sites):
        raw = rate_map.lookup(struct.pack("<I", i))
        n = struct.unpack_from("<Q", raw, 16)[0] if raw else 0
        if n:
            per[site.func.name] = per.get(site.func.name, 0) + n
        p = switch.paused.get(i) if switch else None
        if p and p.windows:
            q = paused.setdefault(site.func.name, Paused())
            q.windows += p.windows
            q.seconds += p.seconds
    if json_out:
        write_json({"rate_limited": sum(per.values()), "by_site": per,
                    "paused": {k: {"windows": v.windows, "seconds": round(v.seconds, 3)}
                               for k, v in paused.items()}}, sys.stdout)
    for name, n in per.items():
        print(f"lumos: {n} calls of {name} over the --rate limit were counted, not shown",
              file=sys.stderr)
    for name, p in paused.items():
        print(f"lumos: {name} reached --rate in {p.windows} second(s); its probe stepped "
              f"aside for the rest of each ({p.seconds:.1f} s in all: calls then were not "
              f"counted; --no-pause counts them at a trap a call)", file=sys.stderr)
