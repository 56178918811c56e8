"""Unit checks of the pure parts: signatures, type parts, ABI assignment, disassembly."""

from __future__ import annotations

import pytest

from lumos.binary.disasm import Insn, iter_insns, registers_written, ret_addresses, uprobe_emulated
from lumos.errors import UsageError
from lumos.golang.abi import assign_abi0, assign_internal
from lumos.golang.model import FuncSpec, Param, Site
from lumos.golang.pclntab import package_of
from lumos.golang.signature import parse_signature, parse_type
from lumos.golang.types import GoType, short_name


def test_parse_signature_forms():
    s = parse_signature("main.prepareAnswer(name string, year int, status int) string")
    assert [(p.name, p.type.kind) for p in s.params] == [
        ("name", "string"), ("year", "int"), ("status", "int")]
    assert [(p.name, p.type.kind, p.is_result) for p in s.results] == [("", "string", True)]
    s = parse_signature("main.f(a, b int, c []string) (n int, err error)")
    assert [p.name for p in s.params] == ["a", "b", "c"]
    assert [p.type.size for p in s.params] == [8, 8, 24]
    assert [(p.name, p.type.kind) for p in s.results] == [("n", "int"), ("err", "interface")]
    s = parse_signature("main.(*T).M(t *main.T, x float64)")
    assert s.name == "main.(*T).M" and s.params[0].type.kind == "pointer"
    s = parse_signature("parser.ParseExpr(x string) (interface{}, error)")
    assert s.results[0].type.empty_interface and not s.results[1].type.empty_interface
    s = parse_signature("f(struct{X, Y int; S string}, [3]int, map[string]int, func(int) int)")
    assert [p.type.size for p in s.params] == [32, 24, 8, 8]
    assert [f.offset for f in s.params[0].type.fields] == [0, 8, 16]
    assert parse_signature("f(b byte, r rune, u unsafe.Pointer, c chan<- int)").params[1] \
        .type.kind == "int32"


@pytest.mark.parametrize("bad", ["main.f", "main.f(a int", "main.f(a main.T)",
                                 "(a int)", "main.f(a int) (b"])
def test_parse_signature_errors(bad):
    with pytest.raises(UsageError):
        parse_signature(bad)


def test_type_parts():
    assert [p.path for p in parse_type("string").parts()] == [".ptr", ".len"]
    assert [p.path for p in parse_type("[]int").parts()] == [".ptr", ".len", ".cap"]
    assert [(p.path, p.cls) for p in parse_type("complex64").parts()] == [
        (".real", "float"), (".imag", "float")]
    st = parse_type("struct{A int8; B uint16; C float64}")
    assert [(p.path, p.offset, p.size, p.cls) for p in st.parts()] == [
        (".A", 0, 1, "int"), (".B", 2, 2, "int"), (".C", 8, 8, "float")]
    assert st.size == 16 and st.align == 8
    assert parse_type("[1]string").parts()[0].path == "[0].ptr"
    assert parse_type("[2]int").parts() is None and parse_type("[0]int").parts() == ()
    assert short_name("map[string]*net/http.Request") == "map[string]*http.Request"
    assert short_name("golang.org/x/net/http2.(*Framer).WriteData") == "http2.(*Framer).WriteData"
    assert package_of("net/http.(*conn).serve") == "net/http"
    assert package_of("main.Map[go.shape.string]") == "main"


def test_abi_internal_spec_example():
    """The example of abi-internal.md: f(a1 uint8, a2 [2]uintptr, a3 uint8)
    (r1 struct { x uintptr; y [2]uintptr }, r2 string)."""
    s = parse_signature("f(a1 uint8, a2 [2]uintptr, a3 uint8) "
                        "(r1 struct{x uintptr; y [2]uintptr}, r2 string)")
    a = assign_internal([p.type for p in s.params], [p.type for p in s.results])
    a1, a2, a3 = a.args
    assert a1.regs == ("ax",) and a3.regs == ("bx",)
    assert a2.regs is None and a2.stack_offset == 0
    r1, r2 = a.results
    assert r1.regs is None and r1.stack_offset == 16
    assert r2.regs == ("ax", "bx")


def test_abi_runs_out_of_registers():
    ints = [parse_type("int")] * 9
    a = assign_internal([*ints, parse_type("string")], [])
    assert a.args[8].regs == ("r11",)
    assert a.args[9].regs is None and a.args[9].stack_offset == 0
    floats = assign_internal([parse_type("float64")] * 16, [])
    assert floats.args[14].regs == ("x14",) and floats.args[15].stack_offset == 0
    mixed = assign_internal([parse_type("float32"), parse_type("int"),
                             parse_type("complex128")], [parse_type("float64")])
    assert [s.regs for s in mixed.args] == [("x0",), ("ax",), ("x1", "x2")]
    assert mixed.results[0].regs == ("x0",)


def test_abi0_layout():
    s = parse_signature("f(a int64, b int8, c int32, s string) (r int64, ok bool)")
    a = assign_abi0([p.type for p in s.params], [p.type for p in s.results])
    assert [x.stack_offset for x in a.args] == [0, 8, 12, 16]
    assert [x.stack_offset for x in a.results] == [32, 40]
    assert a.stack_size == 48


def test_disasm_helpers():
    code = bytes.fromhex("493b6610" "7634" "55" "4889e5" "e800000000" "c3" "90" "ff2425"
                         "00000000" "0f8612000000" "4150")
    insns = list(iter_insns(code, 0x1000))
    assert [i.mnemonic for i in insns] == ["cmp", "jbe", "push", "mov", "call", "ret", "nop",
                                           "jmp", "jbe", "push"]
    assert ret_addresses(code, 0x1000) == [0x100f]
    assert insns[1].target == 0x103A and insns[7].target is None
    raw = [code[i.address - 0x1000:i.end - 0x1000] for i in insns]
    emulated = [uprobe_emulated(i, r) for i, r in zip(insns, raw, strict=True)]
    assert emulated == [False, True, True, False, True, False, True, False, True, True]
    assert registers_written(bytes.fromhex("4889e5"), 0) == {"rbp"}
    assert registers_written(bytes.fromhex("89c3"), 0) == {"rbx"}  # mov ebx, eax
    assert "*" in registers_written(bytes.fromhex("e800000000"), 0)
    assert str(Insn(0, 1, "ret", "")) == "ret"


def test_spec_round_trips_through_json_dict():
    t = GoType("string", 16, "string")
    site = Site("entry", 0x10, 0x10, "jbe 0x40", True, "why")
    spec = FuncSpec("main.f", 0x10, 0x40, "ABIInternal", (Param("s", t),),
                    (Param("", t, True),), "dwarf", site, (site,), "main.go", 3, ("n",))
    assert FuncSpec.from_dict(spec.to_dict()) == spec
    assert spec.signature() == "main.f(s string) string"


def test_quick_writes_agree_with_capstone_detail():
    """The operand-string shortcut for registers an instruction writes says what
    capstone's detail mode says, on every instruction of a real Go binary where it
    answers (capstone also lists the source of TEST as written: it is not)."""
    from support.gobuild import build

    from lumos.binary.disasm import quick_writes, writes_per_insn
    from lumos.golang.gobinary import open_go_binary

    gb = open_go_binary(str(build("alltypes", "1.23.9", "default")), use_cache=False)
    known = 0
    for f in gb.functions[::3]:
        code = gb.elf.read_vaddr(f.entry, f.size)
        for insn, w in zip(iter_insns(code, f.entry), writes_per_insn(code, f.entry),
                           strict=True):
            q = quick_writes(insn)
            if q is None or insn.mnemonic == "test":
                continue
            assert q == w - {"rflags"}, f"{insn}: {q} vs {w}"
            known += 1
    assert known > 20000
