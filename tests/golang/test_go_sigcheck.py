"""A user signature checked against the binary (golang/sigcheck.py, GoBinary.
check_signature): refused when its argument words contradict Go's traceback argument
info or DWARF (exit 2, one line saying what the binary says), decoded with a one-line
warning when only the types differ from DWARF's, accepted silently when right.
Checked on the truth program's main.Raw(a int, s string, p *Point) int, stripped (no
DWARF: ArgInfo only) and not, on every toolchain."""

from __future__ import annotations

import json

import pytest
from conftest import run_lumos
from support.gobuild import VERSIONS, build

from lumos.golang.gobinary import open_go_binary
from lumos.golang.sigcheck import SignatureError
from lumos.golang.signature import parse_signature


def _trace(exe: str, *pats: str):
    r = run_lumos("trace", "--json", "-c", exe, *pats, timeout=60)
    lines = r.stderr.splitlines()
    return r, [x for x in lines if x.startswith("lumos")], \
        [json.loads(x[6:]) for x in lines if x.startswith("TRUTH ") and '"main.Raw"' in x]


@pytest.mark.parametrize("variant", ["default", "stripped"])
@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_word_layout_is_refused(version, variant):
    """Three strings for (int, string, pointer): lengths would be read from other
    arguments' registers. Refused, naming the words the binary describes."""
    exe = str(build("truth", version, variant))
    r, msgs, _ = _trace(exe, "main.Raw(a string, s string, p string)")
    assert r.returncode == 2, r.stderr
    assert len(msgs) == 1 and "Traceback" not in r.stderr, r.stderr
    if variant == "stripped":
        assert "the binary says (8, {8, 8}, 8)" in msgs[0], msgs[0]
    assert msgs[0].startswith("lumos trace: main.Raw: the signature"), msgs[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_other_types_same_words_warn_and_decode_as_written(version):
    """`p uintptr` for a *Point, `a uint` for an int: DWARF disagrees, the words agree.
    One warning line; the values are decoded as the user wrote them."""
    exe = str(build("truth", version, "default"))
    r, msgs, truth = _trace(exe, "main.Raw(a uint, s string, p uintptr)")
    assert r.returncode == 0, r.stderr
    warnings = [m for m in msgs if m.startswith("lumos: warning:")]
    assert len(warnings) == 1, msgs
    assert "DWARF's (a int, s string, p *main.Point)" in warnings[0], warnings[0]
    events = [json.loads(x) for x in r.stdout.splitlines()][:-1]
    assert len(events) == len(truth) == 2
    for e, t in zip(events, truth, strict=True):
        assert e["args"]["a"] == t["args"]["a"][1] & (1 << 64) - 1
        assert e["args"]["p"] == t["args"]["p"][1]
        assert e["args"]["s"]["len"] == t["args"]["s"][2]


@pytest.mark.parametrize("variant", ["default", "stripped"])
@pytest.mark.parametrize("version", VERSIONS)
def test_right_signature_is_silent(version, variant):
    exe = str(build("truth", version, variant))
    r, msgs, truth = _trace(exe, "main.Raw(a int, s string, p *main.Point) int")
    assert r.returncode == 0, r.stderr
    assert not [m for m in msgs if "warning" in m], msgs
    assert len([json.loads(x) for x in r.stdout.splitlines()][:-1]) == len(truth)


@pytest.mark.parametrize("version", VERSIONS)
def test_check_signature_api(version):
    """The Go layer's entry point: warnings as a list, refusals as SignatureError; a
    result layout DWARF contradicts is refused, results left out are not."""
    with open_go_binary(str(build("truth", version, "default")), use_cache=False) as gb:
        fn = gb.get_functions("main.Raw")[0]
        assert gb.check_signature(fn, parse_signature(
            "main.Raw(a int, s string, p *main.Point) int")) == []
        assert gb.check_signature(fn, parse_signature(
            "main.Raw(a int, s string, p *main.Point)")) == []
        assert len(gb.check_signature(fn, parse_signature(
            "main.Raw(x int, y string, z unsafe.Pointer) int"))) == 1
        with pytest.raises(SignatureError, match="does not fit DWARF's"):
            gb.check_signature(fn, parse_signature(
                "main.Raw(a int, s string, p *main.Point) (int32, error)"))
        with pytest.raises(SignatureError):
            gb.check_signature(fn, parse_signature("main.Raw(a int, s string)"))
