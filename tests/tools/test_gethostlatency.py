"""lumos gethostlatency: every lookup a client makes through the test's DNS server (a
known delay per query, tests/support/dnsserver.py) or its /etc/hosts is reported once,
with its host, its function and a latency inside the client's own measurement of the
call and at least the server's delay: a C program (getaddrinfo, gethostbyname,
gethostbyname2) and Go programs built with Go 1.19 to 1.27 using Go's own resolver
(GODEBUG=netdns=go: the net package's functions, marked "go") or cgo's (netdns=cgo:
libc's getaddrinfo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from conftest import LUMOS, run_lumos
from support.dnsserver import LoopbackDNS
from support.gobuild import build
from support.programs import build_c

DELAY_S = 0.05
HOSTS = {"files.test": "127.0.0.9"}
GO_IP = "net.(*Resolver).goLookupIPCNAMEOrder"
GO_HOST = "net.(*Resolver).goLookupHostOrder"


@pytest.fixture
def dns(tmp_path):
    with LoopbackDNS(DELAY_S, tmp_path, HOSTS) as d:
        yield d


def _traced(lumos_args: list[str], clients: list[tuple[list[str], dict]]):
    """Start lumos, run each client to its end, stop lumos: (events, [(pid, the client's
    own lines)])."""
    tracer = subprocess.Popen([*LUMOS, "gethostlatency", "--json", *lumos_args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = tracer.stderr.readline()
        assert banner.startswith("Tracing host lookups"), banner + tracer.stderr.read()
        ran = []
        for argv, env in clients:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, **env})
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            ran.append((p.pid, [x.split() for x in out.splitlines()]))
    finally:
        tracer.send_signal(signal.SIGINT)
        out, err = tracer.communicate(timeout=60)
    assert tracer.returncode == 0, err
    events = [json.loads(x) for x in out.splitlines()]
    assert events[-1] == {"lost": 0}
    return events[:-1], ran


def _check(events, pid, lines, funcs, resolver):
    """The client's lookups, in order, each once; latency inside the client's own."""
    mine = [e for e in events if e["pid"] == pid]
    assert [e["host"] for e in mine] == [x[1] for x in lines], (mine, lines)
    for e, (_, host, ms, addr), func in zip(mine, lines, funcs, strict=True):
        assert e["func"] == func and e["resolver"] == resolver, e
        assert addr != "error"
        assert e["lat_ms"] <= float(ms), (e, ms)          # lumos's interval is inside
        if host not in HOSTS:                             # through the DNS server
            assert e["lat_ms"] >= DELAY_S * 1000, e
        if resolver == "go":
            assert e["comm"] and e["goid"] > 0


def test_c_program_system_wide(dns):
    client = build_c("lookups")
    argv = dns.wrap([client, "a.example", "files.test", "-g", "b.example", "files.test",
                     "-2", "c.example"])
    events, [(pid, lines)] = _traced([], [(argv, {})])
    funcs = ["getaddrinfo"] * 2 + ["gethostbyname"] * 2 + ["gethostbyname2"]
    _check(events, pid, lines, funcs, "libc")
    assert {q for q, _ in dns.queries} == {"a.example", "b.example", "c.example"}


GO_CASES = [("1.19", "cgo"), ("1.21.13", "stripped"), ("1.23.9", "default"),
            ("1.27.3", "cgo"), ("1.27.3", "cgo-pie-stripped")]


@pytest.mark.parametrize(("version", "variant"), GO_CASES)
def test_go_programs_both_resolvers(dns, version, variant):
    """Binary given as target: Go's resolver under netdns=go, libc under netdns=cgo
    (a cgo build; without cgo Go's resolver runs whatever netdns says)."""
    exe = str(build("resolver", version, variant))
    names = ["a.example", "files.test", "-host", "b.example", "files.test", "-dial",
             "c.example"]
    modes = ["go", "cgo"] if variant.startswith("cgo") else ["go"]
    events, ran = _traced([exe], [(dns.wrap([exe, *names]), {"GODEBUG": f"netdns={m}"})
                                  for m in modes])
    _check(events, ran[0][0], ran[0][1], [GO_IP, GO_IP, GO_HOST, GO_HOST, GO_IP], "go")
    if len(ran) > 1:   # cgo: getaddrinfo in the same process, marked libc
        _check(events, ran[1][0], ran[1][1], ["getaddrinfo"] * 5, "libc")


def test_pid_of_a_running_go_program(dns):
    exe = str(build("resolver", "1.27.3", "default"))
    client = subprocess.Popen(dns.wrap([exe, "-wait", "a.example", "files.test"]),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "GODEBUG": "netdns=go"})
    try:
        assert client.stdout.readline() == "ready\n"
        tracer = subprocess.Popen([*LUMOS, "gethostlatency", "-p", str(client.pid)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        banner = tracer.stderr.readline()
        assert "Go's resolver in" in banner and f"PID {client.pid}" in banner, banner
        client.stdin.write("go\n")
        client.stdin.flush()
        lines = [x.split() for x in client.stdout.read().splitlines()]
        out, err = tracer.communicate(timeout=60)   # ends with the process
    finally:
        client.kill()
        client.wait()
    assert tracer.returncode == 0, err
    rows = out.splitlines()
    assert rows[0] == "TIME      PID     COMM                  LATms HOST"   # BCC's widths
    got = [r.split() for r in rows[1:]]
    assert [(g[1], g[2], g[3], g[5]) for g in got] == [
        (str(client.pid), "resolver", "[go]", host) for _, host, _, _ in lines]
    for g, (_, _, ms, _) in zip(got, lines, strict=True):
        assert float(g[4]) <= float(ms) + 0.005           # %10.2f rounds
    assert float(got[0][4]) >= DELAY_S * 1000 - 0.005


def test_not_a_go_program_one_line_exit_2():
    r = run_lumos("gethostlatency", "/bin/ls")
    assert r.returncode == 2 and "not a Go program" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_lumos("gethostlatency", "-p", "1", "/bin/ls")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_a_go_binary_with_part_of_the_resolver_linked_in(goserver):
    """The linker drops resolver functions a program never calls (the goserver on Go
    1.19 has goLookupIPCNAMEOrder, not goLookupHostOrder): probe what is there."""
    proc = goserver[0]
    r = run_lumos("gethostlatency", "-p", str(proc.pid), "-d", "0.5")
    assert r.returncode == 0, r.stderr
    assert "Go's resolver in" in r.stderr
    assert r.stdout.split() == ["TIME", "PID", "COMM", "LATms", "HOST"]
