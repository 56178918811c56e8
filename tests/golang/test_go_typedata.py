"""The runtime's type data read from the file (golang.typedata) equals what reflect says
in the running program, for every Go version and build variant (stripped included)."""

from __future__ import annotations

import json
import subprocess

import pytest
from support.gobuild import VERSIONS, build

from lumos.binary.elf import open_elf
from lumos.golang.gobinary import open_go_binary
from lumos.golang.typedata import load_typedata


@pytest.mark.parametrize("variant", ["default", "stripped", "pie"])
@pytest.mark.parametrize("version", VERSIONS)
def test_type_words_resolve_like_reflect(version, variant):
    exe = build("typedata", version, variant)
    out = json.loads(subprocess.run([str(exe)], capture_output=True, text=True,
                                    check=True).stdout)
    gb = open_go_binary(str(exe))
    bias = out["main"] - gb.get_functions("main.main")[0].entry
    gb.close()
    with open_elf(str(exe)) as elf:
        td = load_typedata(elf)
        for e in out["types"]:
            t = td.type_at(e["addr"] - bias)
            assert t is not None, e
            assert (t.name, t.size) == (e["name"], e["size"]), e
            if e.get("elem"):
                assert t.elem == e["elem"] - bias, e
            if e.get("fields"):
                got = [f"{f.name}:{f.offset}:{td.type_at(f.type).name}" for f in td.fields(t)]
                assert got == e["fields"]
            assert td.find(e["name"], t.kind) == t.addr, e["name"]
        assert td.find("no.SuchType") is None
