"""--prometheus: a real Prometheus (Debian's) scrapes a running `lumos latency`, and its
query API returns the histogram with the right count and buckets; funccount's counter
read by prometheus_client's own parser."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.gobuild import build

LUMOS = [sys.executable, "-m", "lumos.cli"]
N = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


class Traced:
    """profiled calling main.c N times under a lumos tool serving metrics on a port."""

    def __init__(self, tool: list[str], tmp_path):
        self.prog = subprocess.Popen([str(build("profiled")), "stacks", str(N)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.prog.stdout.readline().strip() == "ready"
        self.port = free_port()
        self.err = tmp_path / "lumos.err"
        with open(self.err, "w") as errf:
            self.lumos = subprocess.Popen([*LUMOS, *tool, "-p", str(self.prog.pid), "main.c",
                                           "--prometheus", str(self.port)],
                                          stdout=subprocess.DEVNULL, stderr=errf)
        wait_for(lambda: "serving Prometheus metrics" in self.err.read_text(), 60,
                 f"lumos to serve ({self.err.read_text()})")
        self.prog.stdin.write("\n")
        self.prog.stdin.flush()
        assert self.prog.stdout.readline().strip() == f"calls {N}"

    def metrics(self):
        return {f.name: f for f in text_string_to_metric_families(
            get(f"http://127.0.0.1:{self.port}/metrics"))}

    def close(self):
        self.lumos.send_signal(2)
        self.lumos.wait(timeout=30)
        self.prog.stdin.close()
        self.prog.wait(timeout=30)


def test_funccount_counter(tmp_path):
    t = Traced(["funccount"], tmp_path)
    try:
        fam = t.metrics()["lumos_function_calls"]
        assert fam.type == "counter"
        assert [(s.name, s.labels, s.value) for s in fam.samples
                if s.name.endswith("_total")] == [
            ("lumos_function_calls_total", {"function": "main.c"}, N)]
    finally:
        t.close()


def test_prometheus_scrapes_latency_histogram(tmp_path):
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.fail("Debian's prometheus is missing: apt-get install prometheus "
                    "(scripts/setup-system.sh)", pytrace=False)
    t = Traced(["latency"], tmp_path)
    pport = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: lumos
    static_configs:
      - targets: ["127.0.0.1:{t.port}"]
""")
    server = subprocess.Popen([prom, f"--config.file={config}",
                               f"--storage.tsdb.path={tmp_path / 'data'}",
                               f"--web.listen-address=127.0.0.1:{pport}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{pport}/api/v1/query?query="

    def query(q: str):
        try:
            body = json.loads(get(api + urllib.parse.quote(q)))
        except OSError:
            return None
        return body["data"]["result"] if body.get("status") == "success" else None

    try:
        count = wait_for(lambda: query('lumos_function_latency_seconds_count'
                                       '{function="main.c"}'), 60, "Prometheus to scrape")
        assert float(count[0]["value"][1]) == N
        assert count[0]["metric"]["job"] == "lumos"
        buckets = query('lumos_function_latency_seconds_bucket{function="main.c"}')
        got = sorted(((r["metric"]["le"], float(r["value"][1])) for r in buckets),
                     key=lambda t: float(t[0]))
        # the same buckets as the exporter serves, cumulative, ending at +Inf = N
        direct = t.metrics()["lumos_function_latency_seconds"]
        want = sorted(((s.labels["le"], s.value) for s in direct.samples
                       if s.name.endswith("_bucket")), key=lambda t: float(t[0]))
        assert [(float(a), b) for a, b in got] == [(float(a), b) for a, b in want]
        assert got[-1] == ("+Inf", N)
        values = [v for _, v in got]
        assert values == sorted(values) and len(values) >= 3
        # log2 buckets: le = 2^(i+1)-1 microseconds, in seconds
        for le, _ in got[:-1]:
            us = round(float(le) * 1e6)
            assert us + 1 & us == 0, le
        total = query('lumos_function_latency_seconds_sum{function="main.c"}')
        assert 0 < float(total[0]["value"][1]) < N * 0.01
    finally:
        server.terminate()
        server.wait(timeout=30)
        t.close()
