"""Decoded values are written the way Go's fmt writes them: ground truth from Go."""

from __future__ import annotations

import json
import struct
import subprocess

from support.gobuild import build

from lumos.golang.anyvalue import GoAny
from lumos.output.anyfmt import go_duration, go_float, sprint, sprintf


def test_floats_and_durations_like_fmt():
    out = json.loads(subprocess.run([str(build("fmtvalues"))], capture_output=True,
                                    text=True, check=True).stdout)
    for bits, text in out["f64"]:
        assert go_float(struct.unpack("<d", struct.pack("<Q", bits))[0]) == text
    for bits, text in out["f32"]:
        assert go_float(struct.unpack("<f", struct.pack("<I", bits))[0], 32) == text
    for ns, text in out["dur"]:
        assert go_duration(ns) == text


def test_sprint_spaces_and_sprintf_verbs():
    s = GoAny("string", (b"a", 1), "string")
    one = GoAny("int", 1, "int")
    assert sprint([s, s, one, one, s]) == "aa1 1a"       # fmt.Sprint("a","a",1,1,"a")
    assert sprintf("%d-%s %q %%", [one, s, s]) == '1-a "a" %'
    assert sprintf("%d %d", [one]) == "1 %!d(MISSING)"
