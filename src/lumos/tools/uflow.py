"""uflow: method flow of a Python process (BCC's uflow), or of a Go one (lumos flow).

Two ways to see Python calls (binary/cpython.py says why):
- uprobe mode (default): probes in CPython's eval loop (_PyEval_EvalFrameDefault's
  entry, its `start_frame` label and the labels where frames end), names read from
  the code object. Works on builds without USDT probes (python.org, pyenv, most
  containers) for CPython 3.10-3.13; 3.11+ needs DWARF (the file's own or a -dbg
  package's) for the label addresses.
- USDT mode: python:function__entry / function__return, BCC's way. Complete on
  CPython <= 3.10 built --with-dtrace; on 3.11 function__entry misses every
  Python-to-Python call (CPython gh-98894), so lumos picks it only when it must, and
  says so.

Output is BCC's: CPU PID TID TIME(us) METHOD, `->`/`<-` indented two spaces per depth
per thread, METHOD = file.qualified_name. BCC's column says TIME(us) but prints
seconds; lumos prints what the header says: microseconds since tracing started.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field

from lumos.binary.cpython import load_interpreter
from lumos.errors import TargetError, UsageError
from lumos.output.jsonl import write_json
from lumos.probes.channel import EventChannel
from lumos.probes.pyframe import KIND_ENTRY, FrameSite, PyFrameEvents, decode_unicode
from lumos.probes.stream import Stream
from lumos.probes.usdt import UsdtEvents
from lumos.session.report import report_lost
from lumos.session.session import Session
from lumos.targets.target import resolve_target
from lumos.targets.usdt import attach_usdt, find_probes, usdt_sites

HELP = "method flow of a Python process (BCC's uflow; also without USDT), or Go (-l go)"
EXAMPLES = """\
  lumos uflow -l python 1234                 # every Python call and return, per thread
  lumos uflow -l python 1234 -M 'handle*'    # only methods matching a glob
  lumos uflow -l python 1234 -C Greeter      # only methods of class Greeter
  lumos uflow -l python -c 'python3 app.py'  # start a script, trace it from the start
  lumos uflow -l python 1234 --mode usdt     # BCC's probes (python --with-dtrace)
  lumos uflow -l go 4321 'main.*'            # Go: lumos flow on the process
"""


def add_arguments(p) -> None:
    p.add_argument("-l", "--language", choices=("python", "go"), default="python")
    p.add_argument("pid", nargs="?", type=int, help="the process to trace")
    p.add_argument("patterns", nargs="*", help="-l go: function patterns (default main.*)")
    p.add_argument("-c", "--command", metavar="CMD", help="start CMD and trace it")
    p.add_argument("-M", "--method", help="only methods whose name matches this glob "
                                          "(or starts with it)")
    p.add_argument("-C", "--class", dest="clazz",
                   help="only methods of this class (the qualified name's owner)")
    p.add_argument("--mode", choices=("auto", "uprobe", "usdt"), default="auto",
                   help="how calls are seen (default: uprobes unless only USDT works)")
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS")
    p.add_argument("--json", action="store_true", help="write JSON lines")


def run(args) -> int:
    if args.language == "go":
        return _run_go(args)
    if args.pid is None and not args.command:
        raise UsageError("give the PID of a Python process (or -c CMD)")
    flow = Flow(args.method, args.clazz, args.json)
    trace_python(args, flow.handle, "method flow", header=flow.header)
    return 0


def _run_go(args) -> int:
    """-l go: lumos flow on the process, its own options filled in from ours."""
    import argparse

    from lumos.tools import flow as goflow
    if args.pid is None and not args.command:
        raise UsageError("-l go: give a PID (or -c CMD)")
    argv = ["-p", str(args.pid)] if args.pid is not None else ["-c", args.command]
    argv += ["-d", str(args.duration)] if args.duration else []
    argv += ["--json"] if args.json else []
    p = argparse.ArgumentParser()
    goflow.add_arguments(p)
    return goflow.run(p.parse_args(argv + (args.patterns or ["main.*"])))


@dataclass
class Call:
    """One entry or exit, decoded: what uflow prints and ucalls counts."""

    ts_ns: int
    pid: int
    tid: int
    cpu: int
    entry: bool
    file: str
    name: str
    line: int
    frame: int = 0


def trace_python(args, handle, what: str, header=None, on_end=None) -> None:
    """Attach in the chosen mode, then hand each Call to handle(call) until the end."""
    ns = _target_namespace(args)
    target = resolve_target(ns, need_patterns=False)
    with Session(ns, need_patterns=False, target=target) as s:
        interp, reason = None, ""
        if args.mode != "usdt":
            try:
                interp = load_interpreter(target.exe, target.pid if not target.launched
                                          else None)
            except TargetError as e:
                if args.mode == "uprobe":
                    raise
                reason = str(e)
        channel = EventChannel(32 << 20).open(s.stack)
        if interp is not None:
            decoder = _attach_uprobes(s, interp, channel, target)
            mode = (f"uprobes on {interp.path}:_PyEval_EvalFrameDefault (CPython "
                    f"{interp.version[0]}.{interp.version[1]}, {len(decoder.sites)} sites, "
                    f"offsets from {interp.source})")
        else:
            decoder = _attach_usdt(s, channel, target, reason)
            mode = "USDT python:function__entry/function__return"
        print(f"lumos uflow: mode: {mode}", file=sys.stderr)
        for note in decoder.notes:
            print(f"lumos uflow: note: {note}", file=sys.stderr)
        s.banner(f"{what} of Python")
        if header is not None:
            header()
        runner = s.start()
        stream = Stream(channel, decoder.record_size)
        stream.run(runner, lambda b: [handle(c) for c in decoder.calls(b)],
                   flush=sys.stdout.flush)
        if on_end is not None:
            on_end()
        report_lost(stream, args.json)


def _target_namespace(args):
    import argparse
    return argparse.Namespace(args=[], pid=args.pid, command=args.command,
                              duration=args.duration, json=args.json)


class _UprobeDecoder:
    def __init__(self, program: PyFrameEvents, sites, layout):
        self.sites = sites
        self.unpack = program.record.struct.unpack_from
        self.record_size = program.record_size
        self.layout = layout
        self.notes: list[str] = []
        self._names: dict[tuple[int, bytes, bytes], tuple[str, str]] = {}
        self._last: dict[int, int] = {}   # tid -> frame of its last entry

    def calls(self, batch):
        for rec in batch.records():
            ts, pid, tid, cpu, site, frame, code, line, kind, fraw, nraw = self.unpack(rec)
            if kind == KIND_ENTRY:
                # The same frame entered twice with no exit between is one entry seen
                # twice: the C entry falling through start_frame, or RESUME jumping on
                # to RESUME_QUICK's handler.
                if frame and self._last.get(tid) == frame:
                    continue
                self._last[tid] = frame
            else:
                self._last.pop(tid, None)
            file = name = ""
            if code:
                key = (code, fraw[:64], nraw[:64])
                got = self._names.get(key)
                if got is None:
                    got = (decode_unicode(fraw, self.layout)[0],
                           decode_unicode(nraw, self.layout)[0])
                    if len(self._names) < 1 << 16:
                        self._names[key] = got
                file, name = got
            yield Call(ts, pid, tid, cpu, kind == KIND_ENTRY, file, name, line, frame)


def _attach_uprobes(s, interp, channel, target):
    from lumos.probes.attach import attach_sites
    from lumos.probes.probesite import ProbeSite
    variants: list[FrameSite] = []
    sites = []
    for es in interp.sites:
        loc = es.frame
        fs = FrameSite(0 if es.kind == "entry" else 1,
                       loc.kind if loc is not None else "none",
                       loc.reg if loc is not None else "", loc.offset if loc else 0)
        if fs not in variants:
            variants.append(fs)
        sites.append(ProbeSite(interp.path, es.offset, es.label, es.kind, 0, 0,
                               variants.index(fs)))
    program = PyFrameEvents(variants, channel, interp.layout,
                            target.pid if target.pid else None)
    attach_sites(program.build, sites, target.pid, s.stack)
    return _UprobeDecoder(program, interp.sites, interp.layout)


class _UsdtDecoder:
    def __init__(self, probes, program: UsdtEvents, notes):
        self.kinds = [p.name == "function__entry" for p in probes]
        self.unpack = program.record.struct.unpack_from
        self.record_size = program.record_size
        self.notes = notes

    def calls(self, batch):
        for rec in batch.records():
            f = self.unpack(rec)
            ts, pid, tid, site, cpu, _a0, _a1, line = f[:8]
            file = f[10].split(b"\0", 1)[0].decode("utf-8", "replace")
            name = f[11].split(b"\0", 1)[0].decode("utf-8", "replace")
            yield Call(ts, pid, tid, cpu, self.kinds[site], file, name,
                       line - (1 << 64) if line >> 63 else line)


def _attach_usdt(s, channel, target, reason: str):
    try:
        probes = find_probes(target, ["usdt:python:function__entry",
                                      "usdt:python:function__return"])
    except TargetError:
        raise TargetError((reason + "; and " if reason else "") +
                          "no python:function__entry USDT probes either (a Python built "
                          "--with-dtrace has them, e.g. Debian's /usr/bin/python3.X)") from None
    sites, variants = usdt_sites(probes)
    program = UsdtEvents(variants, channel, target.pid if target.pid else None, (0, 1), 120)
    att = attach_usdt(program.build, sites, target, s.stack)
    notes = list(att.notes)
    if reason:
        notes.append(f"uprobe mode unavailable ({reason}); using USDT")
    notes.append("CPython 3.11's function__entry probe misses Python-to-Python calls "
                 "(gh-98894): entries of those calls will be missing")
    return _UsdtDecoder(probes, program, notes)


@dataclass
class _Thread:
    stack: list = field(default_factory=list)   # (frame, method, shown)


class Flow:
    """Per-thread depth, filters, BCC's line format."""

    def __init__(self, method: str | None, clazz: str | None, json_out: bool):
        self.method = method
        self.clazz = clazz
        self.json = json_out
        self.threads: dict[int, _Thread] = {}
        self.t0: int | None = None
        self.out = sys.stdout

    def header(self) -> None:
        if not self.json:
            self.out.write(f"{'CPU':<3} {'PID':<7} {'TID':<7} {'TIME(us)':<10} METHOD\n")

    def wanted(self, name: str) -> bool:
        if self.method and not (fnmatch.fnmatchcase(name.rsplit(".", 1)[-1], self.method)
                                or name.rsplit(".", 1)[-1].startswith(self.method)):
            return False
        if self.clazz:
            owner = name.rsplit(".", 1)[0] if "." in name else ""
            if not (owner == self.clazz or owner.endswith("." + self.clazz)
                    or fnmatch.fnmatchcase(owner, self.clazz)):
                return False
        return True

    def handle(self, c: Call) -> None:
        if self.t0 is None:
            self.t0 = c.ts_ns
        th = self.threads.setdefault(c.tid, _Thread())
        if c.entry:
            shown = self.wanted(c.name)
            depth = sum(1 for e in th.stack if e[2])
            th.stack.append((c.frame, (c.file, c.name), shown))
            if shown:
                self._line(c, depth, "->", c.file, c.name)
            return
        entry = self._pop(th, c.frame)
        if entry is None:
            if c.name and self.wanted(c.name):  # entered before tracing began
                self._line(c, 0, "<-", c.file, c.name)
            return
        _, (file, name), shown = entry
        if shown:
            self._line(c, sum(1 for e in th.stack if e[2]), "<-", c.file or file,
                       c.name or name)

    @staticmethod
    def _pop(th: _Thread, frame: int):
        if not th.stack:
            return None
        if frame:
            for i in range(len(th.stack) - 1, -1, -1):
                if th.stack[i][0] == frame:
                    entry = th.stack[i]
                    del th.stack[i:]
                    return entry
            return None
        return th.stack.pop()

    def _line(self, c: Call, depth: int, arrow: str, file: str, name: str) -> None:
        us = (c.ts_ns - self.t0) // 1000
        method = f"{file}.{name}" if file else name
        if self.json:
            write_json({"cpu": c.cpu, "pid": c.pid, "tid": c.tid, "time_us": us,
                        "event": "call" if arrow == "->" else "return", "depth": depth,
                        "file": file, "method": name, "line": c.line}, self.out, flush=False)
            return
        self.out.write(f"{c.cpu:<3} {c.pid:<7} {c.tid:<7} {us:<10} "
                       f"{'  ' * depth}{arrow} {method}\n")
