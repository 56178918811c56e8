"""lumos http / sql on bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import pytest
from conftest import run_lumos
from support.gobuild import build
from support.programs import ROOT

GOSERVER = ROOT / "examples" / "goserver"


@pytest.mark.parametrize("args,message", [
    (("http", "/bin/ls"), "not a Go program"),
    (("sql", "GOSERVER"), "does not use database/sql"),
    (("http", "GOSERVER", "--slow", "-1"), "--slow must be"),
    (("http", "GOSERVER", "--prometheus", "x:y"), "give [HOST:]PORT"),
    (("http", "GOSERVER", "--filter", "nope == 1"), "events have no field nope"),
    (("sql", "GOSERVER", "--filter", 'rows == "x"'), "not a string"),
    (("http", "GOSERVER", "--ring-mb", "3"), "power of two"),
    (("http", "-p", "999999"), "999999"),
])
def test_bad_input_is_one_line(args, message):
    exe = str(build(GOSERVER))
    r = run_lumos(*(exe if a == "GOSERVER" else a for a in args), "-d", "1")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
