"""Golden listings of generated programs, built against stub maps (no root, no kernel).

A change to an emitter shows up here as a readable diff of the listing, comments
included. After an intended change: LUMOS_UPDATE_GOLDEN=1 pytest tests/probes/test_listings.py
and review the diff of tests/probes/golden/ before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lumos.bpf.asm import encode
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_MULTI
from lumos.probes.capture import Capture, WordLoc
from lumos.probes.channel import EventChannel
from lumos.probes.count import count_program
from lumos.probes.eventprog import EventProgram, GoroutineSource, Variant
from lumos.probes.filter import parse_filter
from lumos.probes.latency import LatencyFunction, LatencyProbe
from lumos.probes.probesite import ProbeSite

GOLDEN = Path(__file__).parent / "golden"


class StubMap:
    """Stands in for a kernel map: listings need a name, encoding an fd."""

    def __init__(self, name: str):
        self.name = name
        self.fd = 3


def StubChannel() -> EventChannel:
    """An EventChannel that was never opened, its maps stubbed."""
    channel = EventChannel(32 << 20)
    channel.ring, channel.drops = StubMap("lumos_events"), StubMap("lumos_drops")
    return channel


G = GoroutineSource(0x98, goid_source="DWARF runtime.g")
NAME = Capture("name", "string", (WordLoc.register("ax"), WordLoc.register("bx")), 16,
               str_max=64, type_name="string", source="DWARF")
YEAR = Capture("year", "int", (WordLoc.register("cx"),), 8, type_name="int", source="DWARF")
RESULT = Capture("~r0", "string", (WordLoc.register("ax"), WordLoc.register("bx")), 16,
                 str_max=64, type_name="string", source="DWARF")


def _check(name: str, spec) -> None:
    encode(list(spec.insns))  # labels resolve, jumps in range
    text = spec.explain() + "\n"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("LUMOS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden listing {path}: run with LUMOS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"listing of {name} changed (see the module docstring)"


def test_count_program():
    _check("count", count_program(StubMap("lumos_counts"), 1234, BPF_PROG_TYPE_KPROBE,
                                  BPF_TRACE_UPROBE_MULTI))


def test_trace_program_with_filter_and_returns():
    expr = parse_filter('year == 2021 && name != ""')
    variants = [Variant("entry", (NAME, YEAR), expr, (NAME, YEAR), G, frame=False,
                        pairing="entry"),
                Variant("return", (RESULT,), None, (), G, frame=False, pairing="exit")]
    prog = EventProgram(variants, StubChannel(), 1234, "lumos_trace", StubMap("lumos_pairs"))
    _check("trace", prog.build(BPF_TRACE_UPROBE_MULTI))


def test_flow_program_with_stack_and_tls_goroutine():
    tls = GoroutineSource(0x98, reg="", tls_offset=-8, fsbase_offset=0x1a38,
                          goid_source="per-version table, go1.27.3")
    variants = [Variant("entry", (), goroutine=G, user_stack=True, sp_delta=8),
                Variant("return", (), goroutine=G), Variant("entry", (), goroutine=tls)]
    _check("flow", EventProgram(variants, StubChannel(), None, "lumos_flow")
           .build(BPF_TRACE_UPROBE_MULTI))


@pytest.mark.parametrize("n", [2, 1000])
def test_latency_program_size_is_flat_in_the_number_of_functions(n):
    functions = [LatencyFunction(f"main.f{i}", G, YEAR if i == 0 else None)
                 for i in range(n)]
    entries = [ProbeSite("/bin/x", 0x1000 + i, f"main.f{i}", func_index=i) for i in range(n)]
    exits = [ProbeSite("/bin/x", 0x2000 + i, f"main.f{i}", "return", func_index=i)
             for i in range(n)]
    probe = LatencyProbe(functions, entries, exits, 1000, 1234)
    probe.starts, probe.hist = StubMap("lumos_starts"), StubMap("lumos_hist")
    probe.counters = StubMap("lumos_latency_counters")
    spec = probe._build(BPF_TRACE_UPROBE_MULTI)
    if n == 2:
        _check("latency", spec)
    else:  # two shapes (with and without --by), whatever the count
        assert len(spec.insns) == len(probe._build(0).insns) < 400
