"""Assembly bodies and ABI wrappers read by their own ABI (golang/asmabi.py).

Ground truth: the `<ABIInternal>` TEXT declarations in each toolchain's own amd64
assembly (runtime.memmove, memequal, cmpstring...: arguments in AX, BX, CX); every other
assembly body is ABI0. For the wrappers between the ABIs, the linker's own .symtab names
(pkg.f.abi0 for the ABI0 one) of the default build; the stripped and PIE builds must
come out the same without them. Traced: runtime.memmove, called by copy() in the truth
program with buffers it prints, read from registers, not from the stack.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from conftest import run_lumos
from support.gobuild import VARIANTS, VERSIONS, build, go_tool

from lumos.golang.gobinary import open_go_binary
from lumos.golang.model import ABI0, ABI_INTERNAL

_TEXT = re.compile(r"^TEXT\s+([\w/∕.]*)·(\w+)<ABIInternal>\(SB\)", re.M)


@cache
def abi_internal_asm(version: str) -> frozenset[str]:
    """Full names of the assembly functions the toolchain declares <ABIInternal>."""
    root = Path(go_tool(version, "env", "GOROOT").strip()) / "src"
    out = set()
    for f in root.rglob("*.s"):
        if "testdata" in f.parts or "amd64" not in f.name:
            continue
        for pkg, name in _TEXT.findall(f.read_text(errors="replace")):
            pkg = pkg.replace("∕", "/") or f.parent.relative_to(root).as_posix()
            out.add(f"{pkg}.{name}")
    return frozenset(out)


@cache
def wrappers_abi0(version: str, variant: str) -> dict[str, set[int]]:
    """{name: offsets from the text start of its .abi0 symbols} in the build (the default
    build's for the stripped one: the same code)."""
    variant = "default" if variant == "stripped" else variant
    with open_go_binary(str(build("truth", version, variant)), use_cache=False) as gb:
        text = gb.functions[0].entry
        out: dict[str, set[int]] = {}
        for s in gb.elf.functions:
            if s.name.endswith(".abi0"):
                out.setdefault(s.name.removesuffix(".abi0"), set()).add(s.addr - text)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_asm_body_and_wrapper_has_its_abi(version, variant):
    declared = abi_internal_asm(version)
    abi0_syms = wrappers_abi0(version, variant)
    assert "runtime.memmove" in declared
    with open_go_binary(str(build("truth", version, variant)), use_cache=False) as gb:
        tab = gb._table()
        text = gb.functions[0].entry
        names: dict[str, int] = {}
        for f in gb.functions:
            names[f.name] = names.get(f.name, 0) + 1
        wrong, checked = [], 0
        for f in gb.functions:
            asm = tab.info(f).is_asm
            if not asm and names[f.name] == 1:
                continue
            args = tab.info(f).args
            if asm and names[f.name] == 1:
                # no argument frame, or no size for it: ABI0, whatever the declaration
                # (g from TLS is right in both ABIs, and no argument word is read)
                want = ABI_INTERNAL if f.name in declared and args > 0 else ABI0
            else:   # a body and its wrapper: the linker's .abi0 symbol says which is ABI0
                want = ABI0 if f.entry - text in abi0_syms.get(f.name, ()) else ABI_INTERNAL
            checked += 1
            got = gb.abi_of(f)
            if got != want:
                wrong.append(f"{f.name} at {f.entry:#x}: {got}, should be {want}")
    assert checked > 100, checked
    assert not wrong, f"go{version}-{variant}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("version", VERSIONS)
def test_memmove_arguments_from_registers(version, variant):
    """copy(dst, src) of 12345 bytes calls runtime.memmove(dst, src, 12345): lumos must
    read those from AX, BX, CX, as raw words w0..w2 without a signature, and by name
    with one (and a filter on it)."""
    exe = str(build("truth", version, variant))
    runs = {
        "raw": ["runtime.memmove"],
        "signature": ["--filter", "n == 12345",
                      "runtime.memmove(to unsafe.Pointer, from unsafe.Pointer, n uintptr)"],
    }
    for how, args in runs.items():
        r = run_lumos("trace", "--json", "-c", exe, *args, timeout=120)
        assert r.returncode == 0, r.stderr
        truth = [json.loads(x[6:]) for x in r.stderr.splitlines() if x.startswith("TRUTH ")]
        want = next(t for t in truth if t["f"] == "runtime.memmove")["args"]
        want = [want["to"][1], want["from"][1], 12345]
        events = [json.loads(x) for x in r.stdout.splitlines()][:-1]
        names = ("w0", "w1", "w2") if how == "raw" else ("to", "from", "n")
        got = [[e["args"][k] for k in names] for e in events if e["args"][names[2]] in
               (12345, [12345])]
        got = [[v[0] if isinstance(v, list) else v for v in g] for g in got]
        assert got == [want], f"go{version}-{variant} {how}: {got} != {want}"
