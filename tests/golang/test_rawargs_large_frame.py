"""Raw-word arguments (golang/rawargs.py) of a stripped binary where Go's traceback
information has no offsets (the argument frame is too large, as for the net package's
goLookupIPCNAMEOrder with its big results): lumos says so instead of failing or
guessing registers, and a neighbour with a small frame still gets its words."""

from __future__ import annotations

import pytest
from conftest import run_lumos
from support.gobuild import build


@pytest.mark.parametrize("version", ["1.19", "1.27.3"])
def test_large_frame_says_unknown_small_frame_keeps_words(version):
    exe = str(build("resolver", version, "stripped"))
    r = run_lumos("funcs", exe, "net.(*Resolver).goLookup*Order")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "net.(*Resolver).goLookupIPCNAMEOrder()" in out
    assert "Go's traceback information has no offsets for them" in out
    assert "args   arg0=AX  arg1=BX,CX  arg2=DI,SI  arg3=R8" in out   # goLookupHostOrder
