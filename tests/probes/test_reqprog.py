"""The http/sql BPF program: the kernel's verifier accepts every shape of it, and a field
lumos cannot place is never read (reqprog, reqbodies, routefold)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace

import pytest
from conftest import require
from support.gobuild import build

from lumos.bpf.prog import load_program
from lumos.bpf.sys import BPF_TRACE_UPROBE_MULTI
from lumos.probes import reqrecord as rr
from lumos.probes.channel import EventChannel
from lumos.probes.reqprog import ReqProgram, open_request_maps
from lumos.targets.reqsites import ReqPlan, plan_requests
from lumos.targets.target import Target

SHAPES = [(False, False, 0, False), (False, True, 0, True), (True, False, 50_000_000, True),
          (True, False, 0, False)]   # (sql has no client calls)


@pytest.fixture(scope="module")
def exe():
    return str(build("reqsvc", "1.27.3", "cgo-stripped"))


@pytest.mark.parametrize("sql,client,slow_ns,stack", SHAPES)
def test_programs_load(exe, sql, client, slow_ns, stack):
    require("uprobe_multi")
    plan = plan_requests(Target(exe), server=True, client=client, sql=sql)
    with ExitStack() as st:
        maps = open_request_maps(st)
        channel = EventChannel(1 << 20).open(st)
        prog = ReqProgram(plan.variants, plan.offsets, maps, channel,
                          rr.SQL if sql else rr.HTTP, None, slow_ns, stack,
                          emit_server=not sql)
        spec = prog.build(BPF_TRACE_UPROBE_MULTI)
        st.enter_context(load_program(spec))
        assert "struct lumos_request" in spec.explain()


def test_unknown_fields_are_not_read(exe):
    """With response.status and .written unknown (an unmeasured Go without DWARF), the
    program reads neither offset, loads, and the plan says which fields are unknown."""
    require("uprobe_multi")
    plan = plan_requests(Target(exe), server=True)
    known = plan.offsets
    unknown = replace(known, resp_status=None, resp_written=None)
    listings = {}
    for name, offs in (("known", known), ("unknown", unknown)):
        with ExitStack() as st:
            maps = open_request_maps(st)
            channel = EventChannel(1 << 20).open(st)
            spec = ReqProgram(plan.variants, offs, maps, channel, rr.HTTP, None).build(
                BPF_TRACE_UPROBE_MULTI)
            st.enter_context(load_program(spec))
            listings[name] = spec.listing()
    status = f"+= {known.resp_status}"
    assert status in listings["known"].replace("r3 += ", "+= ")
    assert status not in listings["unknown"].replace("r3 += ", "+= ")


def test_spawn_one_site_or_two():
    """Goroutine parents: one probe (at newproc's CALL of runqput, the parent from
    g0.m.curg) where g.m and m.curg are placed; without them, two probes (newproc1's
    callergp, then runqput's newg) paired per thread. Both programs load."""
    require("uprobe_multi")
    from lumos.targets.reqsites import _plan_spawn
    exe = str(build("reqsvc", "1.19", "cgo-stripped"))
    plan = plan_requests(Target(exe), server=True, client=True)
    assert plan.offsets.g_m == 48 and plan.offsets.m_curg == 192   # the go1.19 table
    kinds = [plan.variants[s.variant].kind for s in plan.sites]
    assert kinds.count("spawn") == 1 and "spawn_entry" not in kinds
    bare = ReqPlan(offsets=replace(plan.offsets, g_m=None, m_curg=None))
    for s in plan.sites:
        if plan.variants[s.variant].kind != "spawn":
            bare.add(s, plan.variants[s.variant])
    _plan_spawn(exe, bare)
    kinds = [bare.variants[s.variant].kind for s in bare.sites]
    assert kinds.count("spawn_entry") == 1 and kinds.count("spawn_exit") == 1
    for p in (plan, bare):
        with ExitStack() as st:
            maps = open_request_maps(st)
            channel = EventChannel(1 << 20).open(st)
            spec = ReqProgram(p.variants, p.offsets, maps, channel, rr.HTTP, None).build(
                BPF_TRACE_UPROBE_MULTI)
            st.enter_context(load_program(spec))
