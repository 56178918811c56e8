"""Program size and load time against the number of functions traced: the programs of
`lumos latency`, `trace --ret` and `flow` for 1, ~100, ~1,000 and ~5,000 functions of the
goserver, built exactly as the tools build them and loaded into the kernel (not
attached). A program built once per shape stays flat; one built per function grows.

    .venv/bin/python bench/programs.py
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import replace

from common import ROOT, Log, dump_json, machine, markdown_table, write_section

from lumos.bpf.asm import encode
from lumos.bpf.prog import load_program
from lumos.bpf.sys import BPF_TRACE_UPROBE_MULTI
from lumos.errors import LumosError
from lumos.probes.channel import EventChannel
from lumos.probes.eventprog import MAX_VARIANTS_PER_PROGRAM, EventProgram, Variant
from lumos.probes.latency import LatencyFunction, LatencyProbe
from lumos.targets.plan import plan
from lumos.targets.target import Target
from lumos.tools.trace import MAX_ELEMS_DEFAULT, build_variants

GOSERVER = ROOT / "examples" / "goserver" / "goserver"
SETS = [("1", ["main.prepareAnswer"]),
        ("~100", ["net/url.*", "strings.*", "strconv.*", "bufio.*", "main.*"]),
        ("~1,000", ["net/http.*", "main.*"]), ("~5,000", ["*"])]


def _load(stack: ExitStack, specs) -> tuple[str, float]:
    """(instructions, per program if several; seconds to load them all)."""
    specs = specs if isinstance(specs, list) else [specs]
    slots = [len(encode(list(s.insns))) // 8 for s in specs]
    t0 = time.monotonic()
    for spec in specs:
        stack.enter_context(load_program(spec))
    text = f"{sum(slots):,}" + (f" in {len(specs)} programs (largest {max(slots):,})"
                                if len(specs) > 1 else "")
    return text, time.monotonic() - t0


def _latency(stack, planned):
    planned = [f for f in planned if f.exits]
    functions = [LatencyFunction(f.name, f.goroutine, None, f.entry_sp_delta) for f in planned]
    entries = [replace(f.entry, func_index=k) for k, f in enumerate(planned)]
    exits = [replace(x, func_index=k) for k, f in enumerate(planned) for x in f.exits]
    probe = LatencyProbe(functions, entries, exits, 1000)
    probe.starts = stack.enter_context(_map("lumos_starts", 16, 48))
    probe.hist = stack.enter_context(_map("lumos_hist", 40, 16))
    probe.counters = stack.enter_context(_array("lumos_latency_counters"))
    return probe._build(BPF_TRACE_UPROBE_MULTI)


def _map(name, k, v):
    from lumos.bpf.maps import create_map, hash_spec
    return create_map(hash_spec(name, k, v, 1024))


def _array(name):
    from lumos.bpf.maps import array_spec, create_map
    return create_map(array_spec(name, 8, 2, percpu=True))


def _chunks(stack, variants, name):
    """The programs attach_events would load: MAX_VARIANTS_PER_PROGRAM variants each."""
    channel = EventChannel(1 << 20).open(stack)
    size = max(v.record_size for v in variants) + 7 & ~7
    return [EventProgram(variants[i:i + MAX_VARIANTS_PER_PROGRAM], channel, None, name,
                         size=size).build(BPF_TRACE_UPROBE_MULTI)
            for i in range(0, len(variants), MAX_VARIANTS_PER_PROGRAM)]


def _trace(stack, planned):
    _, variants, _ = build_variants(planned, None, True, False)
    return _chunks(stack, variants, "lumos_trace"), len(variants)


def _flow(stack, planned):
    variants = []
    for f in planned:
        for kind in ["entry"] + ["return"] * bool(f.exits):
            v = Variant(kind, (), goroutine=f.goroutine,
                        sp_delta=f.entry_sp_delta if kind == "entry" else 0)
            if v not in variants:
                variants.append(v)
    return _chunks(stack, variants, "lumos_flow"), len(variants)


def main() -> int:
    log = Log()
    rows, raw = [], []
    for label, patterns in SETS:
        planned = plan(Target(str(GOSERVER)), patterns)
        # trace reads slice elements (--max-elems): planned as the tool plans it
        traced = plan(Target(str(GOSERVER)), patterns, max_elems=MAX_ELEMS_DEFAULT)
        log(f"{label}: {len(planned)} functions")
        for tool in ("latency", "trace --ret", "flow"):
            with ExitStack() as stack:
                try:
                    if tool == "latency":
                        spec, shapes = _latency(stack, planned), None
                    elif tool == "flow":
                        spec, shapes = _flow(stack, planned)
                    else:
                        spec, shapes = _trace(stack, traced)
                    slots, secs = _load(stack, spec)
                    result = (slots, f"{secs * 1000:.1f} ms")
                except LumosError as e:
                    slots, secs, result = None, None, (f"fails: {e}".split(":")[0:2], "")
                    result = (f"fails ({str(e)[:60]})", "")
            rows.append([label, len(planned), tool, shapes if shapes is not None else "",
                         *result])
            raw.append({"set": label, "functions": len(planned), "tool": tool,
                        "variants": shapes, "insns": slots, "load_s": secs})
    table = markdown_table(["functions", "matched", "program", "variants", "instructions",
                            "load"], rows, align="lrlrrr")
    m = machine()
    write_section("Program size against functions traced",
                  f"Measured {m['date']} on Linux {m['kernel']}, lumos {m['lumos_commit']}; "
                  f"the goserver's functions, programs built as the tools build them and "
                  f"loaded (not attached).\n\n" + table)
    dump_json("programs", {"machine": m, "results": raw})
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
