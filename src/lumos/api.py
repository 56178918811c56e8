"""lumos.api: your own tools in a few lines of Python, no C (what BCC's Python API is for).

A thin, documented facade over targets/ (what to probe, where its arguments are) and
probes/ (the BPF programs and what they read back); each method is a few calls the
lumos tools make themselves, and everything attached belongs to the Tracer's stack:

    from lumos.api import Tracer
    with Tracer(pid=1234) as t:                        # or Tracer("./server"), command=...
        hist = t.latency("main.prepareAnswer", by="year")    # aggregated in the kernel
        t.sleep(10)                                    # Ctrl-C ends it early too
        for (func, year), h in hist.read().items():
            print(func, year, h.count, "calls")

    with Tracer(pid=1234) as t:                        # streaming, filtered in the kernel
        t.stream("main.prepareAnswer", lambda ev: print(ev.args["name"]),
                 filter='year == 2021', duration=10)

What is not here on purpose: one object that does everything (BCC's BPF class). Tools
that need more use the layers directly: targets.plan, probes.*, bpf.*.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from dataclasses import dataclass

from lumos.errors import TargetError
from lumos.probes.attach import attach_sites
from lumos.probes.channel import EventChannel
from lumos.probes.decode import Decoder, Text
from lumos.probes.eventprog import EventProgram, Variant
from lumos.probes.filter import check_filter, names_in, parse_filter
from lumos.probes.latency import LatencyFunction, LatencyProbe
from lumos.probes.stream import run_stream
from lumos.session.runner import Runner
from lumos.targets.plan import PlannedFunction, plan
from lumos.targets.target import Target, resolve_target

UNITS_NS = {"ns": 1, "us": 1000, "ms": 1000_000}


@dataclass(frozen=True)
class CallEvent:
    """One call seen by Tracer.stream: the function and its arguments by name (strings
    as str, cut at the stream's strlen; integers as int)."""

    function: str
    ts_ns: int
    pid: int
    tid: int
    goid: int
    args: dict


def _plain(v):
    """Go values as Python ones: a string (lumos Text: bytes read + real length) -> str."""
    if isinstance(v, Text):
        return v.data.decode("utf-8", "replace")
    return v


class Histograms:
    """Kernel-side latency histograms; read() -> {(function, by value): Histogram}
    (Histogram: .slots (log2), .count, .sum, in the unit asked for)."""

    def __init__(self, probe: LatencyProbe, functions: list[LatencyFunction]):
        self._probe, self._functions = probe, functions

    def read(self) -> dict:
        return {(self._functions[fi].name, by): h for (fi, by), h in self._probe.read().items()}

    def clear(self) -> None:
        self._probe.clear()


class Tracer:
    """A target (a binary: every process running it; pid=; or command=, started at the
    first stream/sleep) and what is attached to it. Close it (or use `with`)."""

    def __init__(self, binary: str | None = None, pid: int | None = None,
                 command: str | None = None):
        ns = argparse.Namespace(args=[binary] if binary else [], pid=pid, command=command)
        self.target: Target = resolve_target(ns, need_patterns=False)
        self.stack = ExitStack()
        if self.target.launched:
            self.stack.callback(self.target.launched.close)
        self._started = False

    def functions(self, pattern: str) -> list[PlannedFunction]:
        """Functions matching a glob (or 'pkg.F(a int) string' for a stripped binary),
        with their entry/RET sites and arguments (.args: captures by name)."""
        return plan(self.target, [pattern])

    def latency(self, pattern: str, by: str | None = None, unit: str = "us") -> Histograms:
        """Latency histograms of the functions, per value of argument `by` if given."""
        planned = [f for f in plan(self.target, [pattern], strlen=16) if f.exits]
        if not planned:
            raise TargetError(f"{pattern}: no function with a return site to time")
        funcs = [LatencyFunction(f.name, f.goroutine, next(
            (c for c in f.args if c.name == by), None) if by else None, f.entry_sp_delta)
            for f in planned]
        probe = LatencyProbe(funcs, [f.entry for f in planned],
                             [x for f in planned for x in f.exits], UNITS_NS[unit],
                             self.target.pid).attach(self.stack)
        return Histograms(probe, funcs)

    def stream(self, pattern: str, on_event, filter: str | None = None,
               duration: float | None = None, strlen: int = 64) -> int:
        """Call on_event(CallEvent) for each call until `duration` seconds, Ctrl-C, or a
        command's exit; `filter` runs in the kernel. Returns the events lost (0 unless
        the callback falls behind)."""
        expr = parse_filter(filter) if filter else None
        functions = plan(self.target, [pattern], strlen)
        if expr is not None:
            functions = [f for f in functions if names_in(expr) <= {c.name for c in f.args}]
            for f in functions:
                check_filter(expr, {c.name: c for c in f.args}, f.name)
        variants = [Variant("entry", f.args, expr, f.args if expr else (), f.goroutine,
                            False, f.entry_sp_delta, frame=False) for f in functions]
        from dataclasses import replace
        sites = [replace(f.entry, variant=i) for i, f in enumerate(functions)]
        with ExitStack() as local:
            channel = EventChannel(8 << 20).open(local)
            program = EventProgram(variants, channel, self.target.pid, "lumos_api")
            attach_sites(program.build, sites, self.target.pid, local)
            decoder = Decoder(sites, variants)

            def handle(rec) -> None:
                ev = decoder.decode(rec)
                f = functions[ev.site]
                on_event(CallEvent(f.name, ev.ts_ns, ev.pid, ev.tid, ev.goid,
                                   {c.name: _plain(v) for c, v in zip(f.args, ev.values,
                                                                      strict=False)}))

            runner = local.enter_context(self._runner(duration))
            return run_stream(channel, runner, handle, program.record_size).lost

    def sleep(self, seconds: float) -> None:
        """Let the target run (a command starts now) for seconds, or until Ctrl-C."""
        with self._runner(seconds) as runner:
            for _ in runner.ticks(None):
                pass

    def _runner(self, duration: float | None) -> Runner:
        runner = Runner(duration, self.target.launched)
        if self.target.launched and not self._started:
            self._started = True
            self.target.launched.start()
        return runner

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
