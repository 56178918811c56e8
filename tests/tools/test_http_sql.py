"""lumos http and lumos sql against a real Go service (reqsvc) and a real PostgreSQL.

reqsvc logs what it served and queried, after doing it; lumos must report exactly that:
every request's method, path, status and bytes (HTTP/1.1 and HTTP/2 over TLS), each
client call tied to the server request whose goroutine started it, every query's text,
arguments, rows affected or error, through DB, Tx, Conn and Stmt, with lib/pq and the
cgo SQLite driver. Go 1.19 and 1.27, with DWARF and stripped.
"""

from __future__ import annotations

import collections
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import LUMOS, require
from support.gobuild import build
from support.reqsvc import Postgres, Service

BUILDS = [("1.19", "cgo"), ("1.19", "cgo-stripped"), ("1.27.3", "cgo"),
          ("1.27.3", "cgo-stripped")]
IDS = [f"go{v}-{var}" for v, var in BUILDS]

HTTP_PATHS = ["/user/1", "/user/22", "/user/333", "/teapot", "/nothere", "/", "/ping",
              "/user/550e8400-e29b-41d4-a716-446655440000", "/user/deadbeef"]
SQL_PATHS = ["/db/query?id=41", "/db/types", "/db/sleep", "/db/bad", "/db/tx", "/db/stmt",
             "/db/conn", "/db/lite?k=1", "/db/litebad"]


@pytest.fixture(scope="module")
def pg():
    require("uprobe_multi")
    db = Postgres().start()
    yield db
    db.stop()


@pytest.fixture(scope="module", params=BUILDS, ids=IDS)
def service(request, pg, tmp_path_factory):
    version, variant = request.param
    svc = Service(build("reqsvc", version, variant), pg, tmp_path_factory.mktemp("reqsvc"))
    yield svc
    svc.stop()


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_lumos_left():
    """A test that fails half-way leaves no lumos process attached behind it."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


class Lumos:
    """A lumos tool running against the service; stop() sends Ctrl-C, returns JSON lines."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([*LUMOS, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        STARTED.append(self.proc)
        self.err = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:     # the banner is printed once attached
            line = self.proc.stderr.readline()
            self.err += line
            if line.startswith("Tracing") or not line:
                break
        assert "Tracing" in self.err, self.err

    def stop(self, parse: bool = True) -> list[dict]:
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        self.err += err
        assert self.proc.returncode == 0, self.err
        self.out = out
        return [json.loads(line) for line in out.splitlines() if line.strip()] if parse else []


def curl(url: str, *extra: str) -> None:
    subprocess.run(["curl", "-s", "-o", "/dev/null", *extra, url], check=True, timeout=30)


def _served(svc: Service, since: int) -> list[tuple]:
    out = []
    for line in svc.log()[since:]:
        if line.startswith("served "):
            _, method, path, status, size, proto = line.split()
            out.append((method, path, int(status), int(size), proto.split("=")[1]))
    return out


def test_http_every_request_served_and_client_calls_linked(service):
    since = len(service.log())
    lumos = Lumos("http", "-p", str(service.pid), "--client", "--json")
    for p in HTTP_PATHS:
        curl(service.http + p)
    curl(service.http + "/user/4", "-X", "POST", "-d", "x=1")
    curl(service.https + "/user/55", "-k", "--http2")
    curl(service.https + "/teapot", "-k", "--http2")
    events = lumos.stop()
    served = _served(service, since)
    seen = [(e["method"], e["path"], e["status"], e["bytes"],
             "2" if e["proto"] == "HTTP/2" else "1")
            for e in events if e.get("kind") == "server"]
    assert collections.Counter(seen) == collections.Counter(served)
    assert ("GET", "/user/55", 200, 8, "2") in seen   # HTTP/2 over TLS
    # the "/" handler (which also serves /nothere) asks /ping from a goroutine it
    # starts: each such call belongs to the request whose handler started it
    roots = {e["request_id"]: e["path"] for e in events
             if e.get("kind") == "server" and e["path"] in ("/", "/nothere")}
    clients = [e for e in events if e.get("kind") == "client"]
    logged = [ln for ln in service.log()[since:] if ln.startswith("client ")]
    assert len(clients) == len(logged) == len(roots) == 2
    for c in clients:
        assert (c["method"], c["url"], c["status"]) == ("GET", service.http + "/ping", 200)
        assert roots[c["request"]["id"]] == c["request"]["path"]
    assert {c["request"]["id"] for c in clients} == set(roots)
    assert {"lost": 0} in events
    routes = {e["path"]: e["route"] for e in events if e.get("kind") == "server"}
    assert routes["/user/22"] == routes["/user/550e8400-e29b-41d4-a716-446655440000"] == \
        "/user/{id}" and routes["/user/deadbeef"] == "/user/deadbeef"   # folded in the kernel
    summary = {e["name"]: e for e in events if e.get("summary") == "requests served"}
    assert summary["GET /user/{id}"]["count"] == 5 and summary["GET /teapot"]["count"] == 2
    assert summary["POST /user/{id}"]["count"] == 1


LOGGED = re.compile(r'^(query|exec|error) \w+ ("(?:[^"\\]|\\.)*") (\[.*?\])'
                    r'(?: (rows=-?\d+|err=("(?:[^"\\]|\\.)*")))?$')
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _logged_queries(svc: Service, since: int) -> list[tuple]:
    """(op, text, args, rows or error) from reqsvc's own log (Go's strconv.Quote is
    JSON for these texts)."""
    out = []
    for line in svc.log()[since:]:
        m = LOGGED.match(line)
        if m is None:
            continue
        op, text, args, tail, err = m.groups()
        result = json.loads(err) if op == "error" else (tail or "")
        out.append((op, json.loads(text), args, result))
    return out


def _fmt_arg(v) -> str:
    """An argument from lumos's JSON as reqsvc prints it."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and not RFC3339.match(v):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def test_sql_every_query_with_args_rows_errors_and_request(service):
    since = len(service.log())
    lumos = Lumos("sql", "-p", str(service.pid), "--json")
    for p in SQL_PATHS:
        curl(service.http + p)
    events = lumos.stop()
    logged = _logged_queries(service, since)
    seen = []
    for e in events:
        if "op" not in e:
            continue
        args = "[" + " ".join(_fmt_arg(a) for a in e["args"]) + "]"
        if e["error"] is not None:
            seen.append(("error", e["text"], args, e["error"]))
        elif e["op"] == "exec":
            seen.append(("exec", e["text"], args, f"rows={e['rows']}"))
        else:
            seen.append(("query", e["text"], args, ""))
    assert collections.Counter(seen) == collections.Counter(logged)
    by_text = {e["text"]: e for e in events if "op" in e}
    assert by_text["SELECT pg_sleep(0.05)::text"]["duration_ns"] >= 50_000_000
    assert by_text["SELEC 1"]["error"] == 'pq: syntax error at or near "SELEC"'
    assert by_text["INSERT INTO nosuch VALUES (1)"]["error"] == "no such table: nosuch"
    # every query names the request it was made for
    paths = {e["text"]: e["request"]["path"] for e in events if "op" in e}
    assert paths["SELECT name FROM items WHERE id = $1"] in ("/db/tx", "/db/stmt")
    assert paths["UPDATE items SET name = $1 WHERE id > $2"] == "/db/conn"   # Conn
    assert paths["UPDATE items SET name = $1 WHERE id = $2"] == "/db/stmt"   # Stmt
    assert paths["INSERT INTO kv (k, v) VALUES (?, ?)"] == "/db/lite"        # cgo driver
    summary = {e["name"]: e for e in events if e.get("summary") == "queries"}
    assert summary["query SELECT name FROM items WHERE id = $1"]["count"] == 2
    assert summary["query SELEC 1"]["errors"] == 1
    assert summary["query SELECT pg_sleep(0.05)::text"]["p50_ms"] >= 50


def test_http_filter_and_slow(service):
    lumos = Lumos("http", "-p", str(service.pid), "--json", "--filter",
                  'status >= 400 && method == "GET"')
    for p in ("/user/1", "/teapot", "/nothere/x", "/db/nothing"):
        curl(service.http + p)
    curl(service.http + "/teapot", "-X", "POST")
    events = [e for e in lumos.stop() if e.get("kind") == "server"]
    assert sorted((e["method"], e["path"], e["status"]) for e in events) == [
        ("GET", "/db/nothing", 404), ("GET", "/teapot", 418)]
    lumos = Lumos("http", "-p", str(service.pid), "--json", "--slow", "40")
    for p in ("/user/1", "/db/sleep", "/user/2"):
        curl(service.http + p)
    events = lumos.stop()
    assert [e["path"] for e in events if e.get("kind") == "server"] == ["/db/sleep"]
    summary = {e["name"]: e for e in events if e.get("summary") == "requests served"}
    assert summary["GET /user/{id}"]["count"] == 2     # the summary counts every request


def test_slow_and_stack_show_only_slow_queries_with_their_callers(service):
    lumos = Lumos("sql", "-p", str(service.pid), "--slow", "40", "--stack")
    for p in ("/db/query?id=1", "/db/sleep", "/db/query?id=2"):
        curl(service.http + p)
    time.sleep(0.3)
    lumos.proc.send_signal(signal.SIGINT)
    out, err = lumos.proc.communicate(timeout=60)
    lines = out.splitlines()
    events = [ln for ln in lines if " query " in ln]
    assert len(events) == 1 and "pg_sleep(0.05)" in events[0], out
    stack = "\n".join(lines[lines.index(events[0]) + 1:])
    assert "main.query" in stack and "main.dbHandler" in stack, out
    assert "SELECT ($1::int + 1)::text" in out   # in the summary: it counts every query


def test_load_every_request_counted(service, tmp_path: Path):
    """wrk at full speed for 5 s: what lumos saw plus what it says it lost equals what
    the server served, and the kernel's summary counts every request."""
    since = len(service.log())
    lumos = Lumos("http", "-p", str(service.pid), "--json")
    r = subprocess.run(["wrk", "-t", "2", "-c", "8", "-d", "5s", service.http + "/user/7"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    events = lumos.stop()
    served = sum(1 for ln in service.log()[since:] if ln.startswith("served GET /user/7 "))
    assert served >= 10_000, r.stdout
    seen = sum(1 for e in events if e.get("path") == "/user/7")
    lost = next(e["lost"] for e in events if "lost" in e)
    assert seen + lost == served
    summary = {e["name"]: e for e in events if e.get("summary") == "requests served"}
    assert summary["GET /user/{id}"]["count"] == served


def test_prometheus_histograms_count_every_request(service):
    """--prometheus: the kernel's histograms as Prometheus histograms, scraped live."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    from support.reqsvc import free_port
    port = free_port()
    since = len(service.log())
    lumos = Lumos("sql", "-p", str(service.pid), "--quiet", "--prometheus", str(port))
    for i in range(5):
        curl(service.http + f"/db/query?id={i}")
    curl(service.http + "/db/bad")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    lumos.stop(parse=False)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    q = (("error", "false"), ("op", "query"), ("query", "SELECT ($1::int + 1)::text"))
    logged = sum(1 for ln in service.log()[since:] if "SELECT ($1::int + 1)::text" in ln)
    assert samples[("lumos_sql_query_duration_seconds_count", q)] == logged == 5
    assert samples[("lumos_sql_query_duration_seconds_bucket",
                    tuple(sorted((("le", "+Inf"), *q))))] == 5
    bad = (("error", "true"), ("op", "query"), ("query", "SELEC 1"))
    assert samples[("lumos_sql_query_duration_seconds_count", bad)] == 1
    assert 0 < samples[("lumos_sql_query_duration_seconds_sum", q)] < 5
