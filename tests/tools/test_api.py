"""The README's two lumos.api examples (examples/api/*.py, shown verbatim in the README)
run against the goserver; what they print equals what the server logged."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from urllib.parse import quote

from support.programs import ROOT

EXAMPLES = ROOT / "examples" / "api"


def test_readme_shows_the_examples_verbatim():
    readme = (ROOT / "README.md").read_text()
    for name in ("latency_by_year.py", "names_2021.py"):
        assert (EXAMPLES / name).read_text().strip() in readme, name


def _requests(port: int, calls: list[tuple[str, int]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for name, year in calls:
        conn.request("GET", f"/?name={quote(name, safe='')}&year={year}")
        conn.getresponse().read()
    conn.close()


def _run_example(name: str, pid: int, seconds: float, port: int, calls) -> str:
    p = subprocess.Popen([sys.executable, str(EXAMPLES / name), str(pid), str(seconds)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("tracing main.prepareAnswer"), p.stderr.read()
    time.sleep(0.3)
    _requests(port, calls)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return out


def test_latency_by_year_example(goserver):
    proc, port, _ = goserver
    calls = [("a", 2021)] * 5 + [("b", 1999)] * 3 + [("c", 7)]
    out = _run_example("latency_by_year.py", proc.pid, 4, port, calls)
    rows = {int(m.group(1)): int(m.group(2))
            for m in re.finditer(r"^\s+(-?\d+)\s+(\d+)\s+[\d.]+$", out, re.M)}
    assert rows == {7: 1, 1999: 3, 2021: 5}, out


def test_streaming_example_with_filter(goserver):
    proc, port, _ = goserver
    calls = [("x", 1999), ("gopher", 2021), ("y", 2020), ("héllo", 2021)]
    out = _run_example("names_2021.py", proc.pid, 4, port, calls)
    names = re.findall(r"^goid=\d+ name=(.*) year=2021$", out, re.M)
    assert names == [repr("gopher"), repr("héllo")], out
    assert "lost 0" in out
