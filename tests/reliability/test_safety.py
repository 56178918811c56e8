"""Safety rules, checked on the running system: `-p PID` keeps other processes' data in
the kernel, and the Prometheus listener binds to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import LUMOS
from support.gobuild import build
from support.programs import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_servers():
    """Two copies of the goserver, each on its own port."""
    binary = str(build(ROOT / "examples" / "goserver"))
    procs = []
    for _ in range(2):
        port = _free_port()
        p = subprocess.Popen([binary, "-addr", f"127.0.0.1:{port}"], stderr=subprocess.PIPE,
                             text=True)
        assert "listening" in p.stderr.readline()
        procs.append((p, port))
    yield procs
    for p, _ in procs:
        p.kill()
        p.wait()


def _get(port: int, name: str) -> None:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/hello?name={name}", timeout=10).read()


def _listeners(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) listening on `port`."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:
                    out.add(addr)
    return out


def test_pid_filter_only_the_traced_copy_reaches_user_space(two_servers):
    (a, port_a), (b, port_b) = two_servers
    tracer = subprocess.Popen([*LUMOS, "trace", "--json", "-p", str(a.pid), "-d", "6",
                               "main.prepareAnswer"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # attached (the banner comes before the first event)
    for i in range(10):
        _get(port_a, f"mine{i}")
        _get(port_b, f"other{i}")
    out, err = tracer.communicate(timeout=60)
    assert tracer.returncode == 0, err
    events = [json.loads(x) for x in out.splitlines() if '"pid"' in x]
    names = [e["args"]["name"]["str"] for e in events if "args" in e]
    assert sorted(names) == sorted(f"mine{i}" for i in range(10)), out[-2000:]
    assert {e["pid"] for e in events} == {a.pid}


@pytest.mark.parametrize("spec, want", [("{port}", {"0100007F"}),
                                        ("0.0.0.0:{port}", {"00000000"})])
def test_prometheus_binds_to_localhost_unless_told(two_servers, spec, want):
    (a, _), _ = two_servers
    port = _free_port()
    p = subprocess.Popen([*LUMOS, "http", "-p", str(a.pid), "--quiet", "-d", "30",
                          "--prometheus", spec.format(port=port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if _listeners(port):
                break
            time.sleep(0.1)
        assert _listeners(port) == want
    finally:
        p.terminate()
        p.wait(timeout=30)
