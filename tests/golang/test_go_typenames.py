"""golang/typenames: a runtime type descriptor's address -> its name, from the binary's
type data, against the program's own reflect: `profiled types` prints, for a few values,
the type word of the value as an `any` (the descriptor's address) and reflect's name and
size of its type. Go 1.19, 1.21, 1.23, 1.27; default, stripped and PIE."""

from __future__ import annotations

import subprocess

import pytest
from support.gobuild import build

from lumos.golang.gobinary import open_go_binary
from lumos.golang.typenames import allocation_type
from lumos.targets.symbolize import Symbolizer


def own_types(exe: str) -> list[tuple[int, int, str]]:
    """[(ELF virtual address, size, name)] as the running program reports them."""
    prog = subprocess.Popen([exe, "types"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        rows = []
        for line in prog.stdout:
            if line.strip() == "ready":
                break
            _, addr, size, name = line.split(maxsplit=3)
            rows.append((int(addr, 16), int(size), name.strip()))
        sym = Symbolizer(prog.pid, exe)
        out = []
        for addr, size, name in rows:
            path, vaddr = sym.vaddr_in_file(addr)
            assert path == exe
            out.append((vaddr, size, name))
        return out
    finally:
        prog.stdin.close()
        prog.wait(timeout=30)


@pytest.mark.parametrize("version,variant", [("1.19", "default"), ("1.21.13", "pie"),
                                             ("1.23.9", "default"), ("1.27.3", "default"),
                                             ("1.27.3", "stripped"), ("1.27.3", "pie")])
def test_names_match_reflect(version, variant):
    exe = str(build("profiled", version, variant))
    truth = own_types(exe)
    assert {n for _, _, n in truth} >= {"main.node", "*main.node", "uint8", "[]uint8",
                                        "string", "map[string]int", "time.Duration"}
    names = open_go_binary(exe).type_names()
    assert names is not None and names.known
    for vaddr, size, name in truth:
        t = names.lookup(vaddr)
        assert (t.name, t.size) == (name, size), (version, variant, name)
        assert names.lookup(vaddr + 8) is None or names.lookup(vaddr + 8).name != name


def test_allocation_type_spelling():
    exe = str(build("profiled", "1.19", "default"))
    at = {n: a for a, _, n in own_types(exe)}
    names = open_go_binary(exe).type_names()
    assert allocation_type(names, at["main.node"], 248) == "main.node"
    assert allocation_type(names, at["uint8"], 65536) == "[65536]uint8"   # a []byte's array
    assert allocation_type(names, at["[4]uint64"], 32) == "[4]uint64"
    assert allocation_type(names, 0, 64) == "-"             # untyped memory (typ nil)
    assert allocation_type(names, 8, 64) == "?"             # not a descriptor
    assert allocation_type(names, None, 64) == "?"          # not in the binary
