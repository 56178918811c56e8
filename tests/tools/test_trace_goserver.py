"""lumos trace on the demo goserver, which logs every prepareAnswer call itself:

    prepareAnswer name="GopherConRussia2020" year=2020 status=200

1,000 requests with varied names (empty, unicode, control characters, longer than
--strlen, cut inside a rune) and years: the trace equals the log, field for field,
arguments and return value. The same with --filter (integers and strings, in the
kernel), and on a stripped build traced with a user-written signature.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from conftest import LUMOS
from support.gobuild import build
from support.programs import ROOT

STRLEN = 24
SIGNATURE = "main.prepareAnswer(name string, year int, status int) string"

NAMES = ["", "gopher", "héllo wörld", "日本語のテキスト", "🐹" * 7, "x" * 100,
         "a b&c=d?e#f", 'quote" back\\slash', "tab\tnew\nline", "ctrl\x01\x7f\x1b",
         "é" * 20, "a" + "é" * 20, "GopherConRussia2020", "%41%", "+plus+"]
YEARS = ["2021", "0", "-5", "1999", str(2 ** 40), "abc", "", "2021"]


def requests(n: int) -> list[tuple[str, str]]:
    return [(NAMES[i % len(NAMES)] + (str(i) if i % 4 == 3 else ""), YEARS[i % len(YEARS)])
            for i in range(n)]


_ESC = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def go_unquote(q: str) -> bytes:
    """The bytes of a string strconv.Quote printed."""
    assert q[0] == q[-1] == '"'
    s, out, i = q[1:-1], bytearray(), 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = s[i + 1]
        if e in _ESC:
            out.append(_ESC[e])
            i += 2
        elif e == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif e in "uU":
            n = 4 if e == "u" else 8
            out += chr(int(s[i + 2:i + 2 + n], 16)).encode()
            i += 2 + n
        else:
            raise ValueError(f"escape \\{e} in {q}")
    return bytes(out)


_LOG = re.compile(r'^prepareAnswer name=(".*") year=(-?\d+) status=(\d+)$')


def logged_calls(log, start: int) -> list[tuple[bytes, int, int]]:
    text = log.read_bytes()[start:].decode()
    out = []
    for line in text.splitlines():
        m = _LOG.match(line)
        if m:
            out.append((go_unquote(m.group(1)), int(m.group(2)), int(m.group(3))))
    return out


def text_bytes(v: dict) -> bytes:
    return v["str"].encode() if "str" in v else bytes.fromhex(v["hex"])


def check_text(v: dict, data: bytes) -> None:
    assert v["len"] == len(data)
    assert text_bytes(v) == data[:STRLEN]
    assert v.get("truncated", False) == (len(data) > STRLEN)


def check_trace_equals_log(events: list[dict], logged: list[tuple[bytes, int, int]],
                           with_results: bool = True) -> None:
    calls = [e for e in events if e["event"] == "call"]
    rets = [e for e in events if e["event"] == "return"]
    assert len(calls) == len(logged), f"{len(calls)} traced, {len(logged)} logged"
    if with_results:
        assert len(rets) == len(logged)
    for k, (name, year, status) in enumerate(logged):
        c = calls[k]
        assert c["func"] == "main.prepareAnswer"
        assert set(c["args"]) == {"name", "year", "status"}
        check_text(c["args"]["name"], name)
        assert (c["args"]["year"], c["args"]["status"]) == (year, status), (c, name)
        if with_results:
            answer = b"Hello, " + name + f"! Welcome to {year}. Site status: {status}".encode()
            r = rets[k]
            assert set(r["results"]) == {"~r0"} and r["goid"] == c["goid"]
            check_text(r["results"]["~r0"], answer)


def wait_banner(proc) -> None:
    line = proc.stderr.readline()
    while line and not line.startswith("Tracing"):
        line = proc.stderr.readline()
    assert line.startswith("Tracing"), "no banner from lumos"


def send(port: int, reqs: list[tuple[str, str]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for name, year in reqs:
        conn.request("GET", f"/?name={quote(name, safe='')}&year={quote(year, safe='')}")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
    conn.close()


def traced(pid: int, log, reqs, tmp_path, *extra: str):
    """Run lumos trace -p PID while sending reqs; (events, lost, calls the log shows)."""
    out = tmp_path / f"trace{time.monotonic_ns()}.jsonl"
    start = log.stat().st_size
    with open(out, "w") as outf, subprocess.Popen(
            [*LUMOS, "trace", "-p", str(pid), "--json", "--strlen", str(STRLEN), *extra],
            stdout=outf, stderr=subprocess.PIPE, text=True) as lum:
        wait_banner(lum)
        send(pid_port[pid], reqs)
        time.sleep(0.3)  # let lumos read the last events
        lum.send_signal(signal.SIGINT)
        assert lum.wait(timeout=30) == 0, lum.stderr.read()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return lines[:-1], lines[-1]["lost"], logged_calls(log, start)


pid_port: dict[int, int] = {}


@pytest.fixture(scope="module")
def server(goserver):
    proc, port, log = goserver
    pid_port[proc.pid] = port
    return proc.pid, log


def test_thousand_requests_trace_equals_log(server, tmp_path):
    pid, log = server
    reqs = requests(1000)
    t0 = time.monotonic()
    events, lost, logged = traced(pid, log, reqs, tmp_path, "--ret", "main.prepareAnswer")
    assert lost == 0
    assert len(logged) == 1000
    # the log is the program's truth; check it is about our requests
    assert [n for n, _, _ in logged] == [n.encode() for n, _ in reqs]
    check_trace_equals_log(events, logged)
    assert time.monotonic() - t0 < 120


@pytest.mark.parametrize("expr, keep", [
    ('year == 2021 && name != ""', lambda n, y: y == 2021 and n != b""),
    ('name == "héllo wörld" || year < 0', lambda n, y: n == "héllo wörld".encode() or y < 0),
    ('name == ""', lambda n, y: n == b""),
    ("!(year >= 0) || year > 1099511627775", lambda n, y: y < 0 or y > 2 ** 40 - 1),
])
def test_filter(server, tmp_path, expr, keep):
    pid, log = server
    events, lost, logged = traced(pid, log, requests(150), tmp_path, "--ret", "--filter", expr,
                                  "main.prepareAnswer")
    assert lost == 0 and len(logged) == 150
    wanted = [x for x in logged if keep(x[0], x[1])]
    assert wanted, "the filter should keep some calls"
    check_trace_equals_log(events, wanted)


def test_text_output(server, tmp_path):
    pid, log = server
    out = tmp_path / "text.out"
    with open(out, "w") as outf, subprocess.Popen(
            [*LUMOS, "trace", "-p", str(pid), "--ret", "--strlen", "10", "main.prepareAnswer"],
            stdout=outf, stderr=subprocess.PIPE, text=True) as lum:
        wait_banner(lum)
        send(pid_port[pid], [("gopher", "2021"), ("", "0"), ("日本語のテキスト", "7")])
        time.sleep(0.3)
        lum.send_signal(signal.SIGINT)
        lum.wait(timeout=30)
    rows = out.read_text().splitlines()
    assert rows[0].split() == ["TIME", "PID", "TID", "GOID", "CALL"]
    calls = [r.split(None, 4)[4] for r in rows[1:]]
    assert calls == [
        'main.prepareAnswer(name="gopher", year=2021, status=200)',
        'main.prepareAnswer => "Hello, gop"...(+38)',
        'main.prepareAnswer(name="", year=0, status=200)',
        'main.prepareAnswer => "Hello, ! W"...(+29)',
        'main.prepareAnswer(name="日本語\\xe3"...(+14), year=7, status=200)',
        'main.prepareAnswer => "Hello, 日"...(+53)',
    ]


@contextmanager
def run_server(binary: str, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    with open(log, "w") as errf:
        proc = subprocess.Popen([binary, "-addr", f"127.0.0.1:{port}"], stderr=errf)
    try:
        for _ in range(200):
            if "listening" in log.read_text():
                break
            time.sleep(0.05)
        pid_port[proc.pid] = port
        yield proc.pid, log
    finally:
        proc.kill()
        proc.wait()


def test_stripped_build_with_a_signature_decodes_like_dwarf(tmp_path):
    """No DWARF: the user writes the signature in the pattern and gets the same trace."""
    binary = str(build(ROOT / "examples" / "goserver", "1.19", "stripped"))
    with run_server(binary, tmp_path) as (pid, log):
        events, lost, logged = traced(pid, log, requests(300), tmp_path, "--ret", SIGNATURE)
    assert lost == 0 and len(logged) == 300
    check_trace_equals_log(events, logged)


def test_stripped_build_without_a_signature_says_so(tmp_path):
    binary = str(build(ROOT / "examples" / "goserver", "1.19", "stripped"))
    with run_server(binary, tmp_path) as (pid, log):
        r = subprocess.run([*LUMOS, "trace", "-p", str(pid), "main.prepareAnswer", "-d", "0.5"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "no DWARF in this binary" in r.stderr and "signature" in r.stderr


def run_tool(pid: int, log, reqs, tmp_path, tool: str, *args: str):
    """Run `lumos TOOL -p PID --json ARGS` while sending reqs: (JSON lines, logged calls)."""
    out = tmp_path / f"{tool}.jsonl"
    start = log.stat().st_size
    with open(out, "w") as outf, subprocess.Popen(
            [*LUMOS, tool, "-p", str(pid), "--json", *args], stdout=outf,
            stderr=subprocess.PIPE, text=True) as lum:
        wait_banner(lum)
        send(pid_port[pid], reqs)
        time.sleep(0.3)
        lum.send_signal(signal.SIGINT)
        assert lum.wait(timeout=30) == 0, lum.stderr.read()
    return [json.loads(x) for x in out.read_text().splitlines()], logged_calls(log, start)


def test_latency_by_string_and_int_arguments(server, tmp_path):
    """--by name (a string: its first 16 bytes key the histogram) and --by year."""
    pid, log = server
    reqs = requests(120)
    hists, logged = run_tool(pid, log, reqs, tmp_path, "latency", "main.prepareAnswer",
                             "--by", "name")
    assert len(logged) == 120
    want = Counter(n[:16].decode("utf-8", "backslashreplace") + ("..." if len(n) > 16 else "")
                   for n, _, _ in logged)
    assert {h["by"]["name"]: h["count"] for h in hists} == dict(want)
    hists, logged = run_tool(pid, log, reqs, tmp_path, "latency", "main.prepareAnswer",
                             "--by", "year")
    assert {h["by"]["year"]: h["count"] for h in hists} == dict(Counter(y for _, y, _ in logged))


def test_flow_of_requests(server, tmp_path):
    """handler -> checkSite (whose goroutine asks /ping) -> prepareAnswer, per request."""
    pid, log = server
    events, logged = run_tool(pid, log, requests(20), tmp_path, "flow", "main.handler",
                              "main.checkSite", "main.prepareAnswer", "--args")
    assert events[-1] == {"lost": 0} and len(logged) == 20
    events = events[:-1]
    per_g = {}
    for e in events:
        per_g.setdefault(e["goid"], []).append((e["event"], e["func"], e["depth"]))
    one = [("entry", "main.handler", 0), ("entry", "main.checkSite", 1),
           ("return", "main.checkSite", 1), ("entry", "main.prepareAnswer", 1),
           ("return", "main.prepareAnswer", 1), ("return", "main.handler", 0)]
    assert list(per_g.values()) == [one * 20]  # one keep-alive connection: one goroutine
    names = [e["args"]["name"] for e in events if e["func"] == "main.prepareAnswer"
             and e["event"] == "entry"]
    for got, (name, _, _) in zip(names, logged, strict=True):
        assert got["len"] == len(name)
