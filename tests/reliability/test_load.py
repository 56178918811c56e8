"""Load: the goserver under wrk at its maximum rate for 60 s, with `lumos latency` on every
main.* and net/http.* function and `lumos trace --ret` on main.* attached at once.

Ground truth is the server's own log (one prepareAnswer line per answered request) and
the bodies wrk and a second client check against what examples/goserver/main.go must answer.
"""

import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

from conftest import LUMOS
from support.lumosproc import rss_kib, wait_for_banner

from lumos.bpf.tracefs import probe_events_left

LOAD_S = 60
WRK_SCRIPT = Path(__file__).with_name("wrk_check.lua")
# main.* calls per request to "/": handler, checkSite, checkSite.func1, prepareAnswer and
# main.main.func1 for the /ping that checkSite makes; each prints a call and a return
MAIN_CALLS_PER_REQUEST = 5


def expected_body(name: str, year: int) -> str:
    return f"Hello, {name}! Welcome to {year}. Site status: 200\n"


class CheckingClient(threading.Thread):
    """Requests with a different name and year each time (unicode, empty, long ones too),
    every body compared with what the server must answer."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.stop, self.good, self.bad, self.names = port, False, 0, [], []

    def run(self) -> None:
        i = 0
        while not self.stop:
            name = ("", f"py{i}", f"ünïcødé-{i}", "x" * 300 + str(i))[i % 4]
            year = 1900 + i % 200
            q = urllib.parse.urlencode({"name": name, "year": year})
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/?{q}",
                                            timeout=30) as r:
                    body = r.read().decode()
                ok = r.status == 200 and body == expected_body(name, year)
            except OSError as e:
                ok, body = False, repr(e)
            if ok:
                self.good += 1
                self.names.append(name)
            else:
                self.bad.append((name, year, body))
            i += 1
            time.sleep(0.02)


def test_wrk_load_with_latency_and_trace_attached(goserver, tmp_path):
    server, port, log = goserver
    pid = str(server.pid)
    trace_out, lat_out = tmp_path / "trace.jsonl", tmp_path / "latency.jsonl"
    with open(trace_out, "w") as tf, open(lat_out, "w") as lf:
        trace = subprocess.Popen([*LUMOS, "trace", "--json", "--ret", "--ring-mb", "64",
                                  "-p", pid, "main.*"], stdout=tf, stderr=subprocess.PIPE,
                                 text=True)
        lat = subprocess.Popen([*LUMOS, "latency", "--json", "-p", pid, "main.*",
                                "net/http.*"], stdout=lf, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_banner(trace, timeout=60)
        wait_for_banner(lat, timeout=60)
        logged_before = log.read_text().count("prepareAnswer ")
        client = CheckingClient(port)
        client.start()
        wrk = subprocess.Popen(["wrk", "-t", "2", "-c", "8", "-d", f"{LOAD_S}s",
                                "--timeout", "10s", "-s", str(WRK_SCRIPT),
                                f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(10)
        rss_early = [rss_kib(p.pid)["VmRSS"] for p in (trace, lat)]
        wrk_out, wrk_err = wrk.communicate(timeout=LOAD_S + 60)
        rss_late = [rss_kib(p.pid) for p in (trace, lat)]
        client.stop = True
        client.join(timeout=40)
        time.sleep(1)  # the last calls return; then stop both tools
        for p in (trace, lat):
            p.send_signal(2)
        trace_err = trace.communicate(timeout=120)[1]
        lat_err = lat.communicate(timeout=120)[1]
    finally:
        for p in (trace, lat):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert trace.returncode == 0 and lat.returncode == 0, (trace_err, lat_err)
    assert "Traceback" not in trace_err + lat_err

    # zero crashes, zero wrong answers (wrk's Lua script checks every body)
    assert server.poll() is None, "the server died under tracing"
    checked = next(ln for ln in wrk_out.splitlines() if ln.startswith("checked "))
    w = {k: int(v) for k, v in (kv.split("=") for kv in checked.split()[1:])}
    assert w["bad"] == 0 and w["good"] == w["requests"] > 0, (checked, wrk_err)
    assert w["connect"] == w["read"] == w["write"] == w["timeout"] == w["status"] == 0, checked
    assert not client.bad, client.bad[:3]
    assert client.good > 0
    served = log.read_text().count("prepareAnswer ") - logged_before
    # requests wrk had sent when its time ran out may be answered without being counted
    assert w["requests"] + client.good <= served <= w["requests"] + client.good + 8

    # trace: every event printed or counted lost; every call's entry matched by its exit
    events = [json.loads(ln) for ln in trace_out.read_text().splitlines()]
    lost = next(e["lost"] for e in events if "lost" in e)
    calls = [e for e in events if "func" in e]
    assert len(calls) + lost == 2 * MAIN_CALLS_PER_REQUEST * served, (len(calls), lost, served)
    open_calls, unmatched = defaultdict(list), 0
    for e in calls:
        stack = open_calls[e["goid"]]
        if e["event"] == "call":
            stack.append(e["func"])
        elif stack and stack[-1] == e["func"]:
            stack.pop()
        else:
            unmatched += 1
    unmatched += sum(len(s) for s in open_calls.values())
    assert unmatched <= lost, (unmatched, lost)  # 0 when nothing was lost
    if lost == 0:
        traced = Counter((e["args"]["name"]["str"], e["args"]["name"]["len"]) for e in calls
                         if e["func"] == "main.prepareAnswer" and e["event"] == "call")
        assert traced[("wrk", 3)] == served - client.good
        for name in client.names:  # strings are captured up to --strlen (64) bytes
            raw = name.encode()
            assert traced[(raw[:64].decode(), len(raw))] >= 1, name

    # latency: every call timed, counted in the kernel (nothing to lose)
    hists = defaultdict(int)
    for ln in lat_out.read_text().splitlines():
        row = json.loads(ln)
        hists[row["func"]] += row["count"]
    assert hists["main.prepareAnswer"] == hists["main.handler"] == served
    assert hists["main.main.func1"] == served  # each request's /ping
    assert "no room in the histogram map" not in lat_err
    returns_unmatched = int(lat_err.split(" returns had no recorded entry")[0].split()[-1]) \
        if "returns had no recorded entry" in lat_err else 0
    assert returns_unmatched <= 20, lat_err  # only calls begun before attach (Serve, accept)

    # lumos's memory stays flat under load: late RSS within 32 MiB of the early one
    for early, late in zip(rss_early, rss_late, strict=True):
        assert late["VmRSS"] < early + 32 * 1024, (early, late)
    assert probe_events_left() == []
    report = {"served": served, "wrk": w["requests"], "client": client.good,
              "trace_events": len(calls), "lost": lost, "latency_unmatched": returns_unmatched,
              "peak_rss_kib": [r["VmHWM"] for r in rss_late]}
    print(f"\nload figures: {report}")
    Path(os.environ.get("LUMOS_LOAD_REPORT", tmp_path / "figures.json")).write_text(
        json.dumps(report))
