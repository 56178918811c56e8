"""Every function's signature, as `lumos funcs` prints it, against the source (go/parser
via tests/programs/go/sigdump) of every package the program is built from: the goserver
(its standard library included) and the test programs, on all four toolchains.

What DWARF gets wrong and lumos must not pass on: results listed twice in functions with
a defer (Go 1.19-1.23); unnamed and blank inputs left out (Go 1.19: the next input would
be read from the wrong register); a generic function's dictionary left out (1.19-1.23);
zero-sized unnamed inputs listed last (1.21+). lumos checks DWARF's inputs against Go's
traceback argument info (golang/arginfo.py) and repairs or refuses them.

Where the two may still differ, by design: an array length the source writes as a
constant ([BlockSize]uint8: DWARF has [16]uint8); interface method lists (DWARF drops
parameter names); an unnamed input DWARF left out, which lumos can only size from
ArgInfo (`_ word`, `_ {w0, w1}`); and a function whose missing inputs could sit in more
than one place (lumos then shows raw words and says so).
"""

from __future__ import annotations

import re

import pytest
from support.gobuild import VERSIONS, build, package_signatures
from support.programs import ROOT

from lumos.golang.gobinary import open_go_binary
from lumos.golang.model import ABI_INTERNAL
from lumos.golang.signature import _matching, _name_end, _split_top
from lumos.golang.types import short_name

_CONST_LEN = re.compile(r"(?<!map)\[(?!\d+\])[^\[\]]+\]")
_IFACE = re.compile(r"interface ?\{ [^{}]*\}")
_PLACEHOLDER = re.compile(r"^_ (word|\{[w0-9, {}]*\})$")


def _split(sig: str) -> tuple[str, list[str], str]:
    """(name, [parameters], results) of a printed signature."""
    i = _name_end(sig)
    j = _matching(sig, i)
    return sig[:i], _split_top(sig[i + 1:j]), sig[j + 1:].strip()


def _norm(s: str) -> str:
    return _IFACE.sub("interface {...}", s)


def differs(got: str, want: str) -> str | None:
    """Why lumos's signature is not the source's, or None when it is (see module doc)."""
    gname, gparams, gres = _split(_norm(got))
    wname, wparams, wres = _split(_norm(short_name(want)))
    if gname != wname or len(gparams) != len(wparams):
        return "name or number of parameters"
    for g, w in [*zip(gparams, wparams, strict=True), (gres, wres)]:
        if g == w:
            continue
        if w.startswith("_ ") and _PLACEHOLDER.match(g):
            continue
        rx = re.escape(w)
        for m in _CONST_LEN.findall(w):
            rx = rx.replace(re.escape(m), r"\[\d+\]")
        if not re.fullmatch(rx, g):
            return f"{g!r} != {w!r}"
    return None


def compare(program, version: str, only: str = "") -> tuple[int, list[str], list[str]]:
    """(functions compared, differences, functions shown as raw words and why)."""
    want = package_signatures(program, version)
    gb = open_go_binary(str(build(program, version, "default")), use_cache=False)
    n, bad, raw = 0, [], []
    for f in gb.functions:
        sig = want.get(f.name)
        if sig is None or not f.name.startswith(only):
            continue
        spec = gb.spec(f)
        if spec.abi != ABI_INTERNAL:
            continue
        n += 1
        if spec.source == "raw":
            raw.append(f"{f.name}: {'; '.join(spec.notes)}")
            continue
        why = differs(spec.signature(), sig)
        if why:
            bad.append(f"{spec.signature()}\n    source: {short_name(sig)}\n    {why}")
    gb.close()
    return n, bad, raw


@pytest.mark.parametrize("version", VERSIONS)
def test_goserver_signatures_equal_source(version):
    n, bad, raw = compare(ROOT / "examples" / "goserver", version)
    assert n > 3000, f"only {n} functions compared"
    assert not bad, f"go{version}: {len(bad)} of {n} differ:\n" + "\n".join(bad[:30])
    # raw only where lumos says the missing inputs' place is ambiguous
    assert all("ambiguous" in r for r in raw), "\n".join(raw)
    assert len(raw) <= 5, raw


@pytest.mark.parametrize("program", ["truth", "defers", "alltypes"])
@pytest.mark.parametrize("version", VERSIONS)
def test_test_program_signatures_equal_source(program, version):
    n, bad, raw = compare(program, version, "main.")
    assert n >= 5, f"only {n} functions compared"
    assert not bad, f"{program} go{version}:\n" + "\n".join(bad)
    assert not raw, raw
