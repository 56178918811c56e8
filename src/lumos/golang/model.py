"""What lumos knows about one Go function, in the shape the BPF side consumes.

FuncSpec = the function (name, entry, end), its parameters and results (Param: name,
GoType), and its probe sites: one entry Site and one Site per RET. Each Site carries,
for the values readable there (arguments at the entry site, results at a RET), the
location of every piece as a Loc: a `struct pt_regs` field, a stack slot at SP+offset
at that instruction, or "unreadable" with the reason. All plain data, JSON-able
(to_dict/from_dict), so the per-build-id cache can store it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lumos.golang.types import GoType, short_name

ABI_INTERNAL = "ABIInternal"
ABI0 = "ABI0"


@dataclass(frozen=True)
class Loc:
    """Where one piece of a value lives at a probe site.

    kind "reg": read pt_regs field `reg` (ax, bx, cx, di, si, r8..r11, ...); the low
    `size` bytes are the value. kind "stack": read `size` bytes of user memory at
    regs->sp + sp_offset. kind "unreadable": `why` says why (an X register, optimized out).
    `part` names the piece: "" for a whole value, ".ptr"/".len" for a string, ".X" for a
    struct field, ".real" for a complex.
    """

    kind: str
    size: int
    part: str = ""
    reg: str = ""
    sp_offset: int = 0
    why: str = ""

    def describe(self) -> str:
        if self.kind == "reg":
            return self.reg.upper()  # Go assembler names: AX, R8
        if self.kind == "stack":
            return f"{self.sp_offset:#x}(SP)" if self.sp_offset else "0(SP)"
        return f"unreadable ({self.why})"

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "size": self.size}
        if self.part:
            d["part"] = self.part
        if self.kind == "reg":
            d["reg"] = self.reg
        elif self.kind == "stack":
            d["sp_offset"] = self.sp_offset
        else:
            d["why"] = self.why
        return d

    @staticmethod
    def from_dict(d: dict) -> Loc:
        return Loc(d["kind"], d["size"], d.get("part", ""), d.get("reg", ""),
                   d.get("sp_offset", 0), d.get("why", ""))


def reg_loc(reg: str, size: int, part: str = "") -> Loc:
    return Loc("reg", size, part, reg=reg)


def stack_loc(sp_offset: int, size: int, part: str = "") -> Loc:
    return Loc("stack", size, part, sp_offset=sp_offset)


def unreadable(why: str, size: int, part: str = "") -> Loc:
    return Loc("unreadable", size, part, why=why)


@dataclass(frozen=True)
class Param:
    """An argument (or receiver) or a result. name is "" for an unnamed result."""

    name: str
    type: GoType
    is_result: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type.to_dict(), "is_result": self.is_result}

    @staticmethod
    def from_dict(d: dict) -> Param:
        return Param(d["name"], GoType.from_dict(d["type"]), d["is_result"])


@dataclass(frozen=True)
class MorestackCheck:
    """How a probe on the prologue's conditional jump tells apart the pass that is about
    to branch to runtime.morestack (the function then restarts from its entry after the
    stack grew, and the probe fires again): that pass has
    `(regs->flags & flags_mask) != 0` when taken_if_set, `== 0` otherwise (JBE: CF|ZF set).
    Equivalently, it compares `guard_reg` (sp, or r12 for big frames, which holds
    SP - framesize) with the word at g_reg + stackguard0_offset (g.stackguard0); g_reg is
    r14 in Go code, the register the assembler loaded g into in ABI0 code."""

    jump: str               # mnemonic: "jbe"
    flags_mask: int         # 0x41 for jbe
    taken_if_set: bool
    guard_reg: str          # "sp" or "r12"
    stackguard0_offset: int  # 0x10
    g_reg: str = "r14"

    def to_dict(self) -> dict:
        return {"jump": self.jump, "flags_mask": self.flags_mask,
                "taken_if_set": self.taken_if_set, "guard_reg": self.guard_reg,
                "stackguard0_offset": self.stackguard0_offset, "g_reg": self.g_reg}


@dataclass(frozen=True)
class Site:
    """A probe site: instruction address (vaddr) and its file offset (what a uprobe is
    attached at), the instruction, and the locations of the values readable there
    (`locs[i]` belongs to FuncSpec.params[i] at the entry site, to results[i] at a RET).

    emulated: the kernel emulates this instruction (no single step): ~1 µs a hit and
    exact; otherwise it is single-stepped (~5 µs) and may fire twice if a signal lands
    during the step. morestack is set when the site is the prologue's conditional jump.
    """

    kind: str               # "entry" or "ret"
    vaddr: int
    offset: int
    insn: str
    emulated: bool
    why: str = ""
    locs: tuple[tuple[Loc, ...], ...] = ()
    morestack: MorestackCheck | None = None
    sp_delta: int = 0       # bytes pushed since entry: SP here + sp_delta = SP at entry

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "vaddr": self.vaddr, "offset": self.offset, "insn": self.insn,
             "emulated": self.emulated, "why": self.why,
             "locs": [[loc.to_dict() for loc in v] for v in self.locs],
             "sp_delta": self.sp_delta}
        if self.morestack:
            d["morestack"] = self.morestack.to_dict()
        return d

    @staticmethod
    def from_dict(d: dict) -> Site:
        ms = d.get("morestack")
        return Site(d["kind"], d["vaddr"], d["offset"], d["insn"], d["emulated"], d["why"],
                    tuple(tuple(Loc.from_dict(x) for x in v) for v in d["locs"]),
                    MorestackCheck(**ms) if ms else None, d.get("sp_delta", 0))


@dataclass(frozen=True)
class FuncSpec:
    """Everything lumos knows about probing one Go function.

    source says where params came from: "dwarf", "signature" (user-written), or "raw"
    (no DWARF: machine words only). notes are one-line caveats for the user.
    """

    name: str
    entry: int
    end: int
    abi: str
    params: tuple[Param, ...]
    results: tuple[Param, ...]
    source: str
    entry_site: Site
    ret_sites: tuple[Site, ...]
    file: str = ""
    line: int = 0
    notes: tuple[str, ...] = field(default=())

    def signature(self, short: bool = True, full_name: bool = False) -> str:
        """The Go signature: main.f(a int, b string) (int, error). A method's receiver
        is its first parameter, as in Go tracebacks. short: package-qualified names
        shortened (types, and the function's own name unless full_name)."""
        def typ(t: GoType) -> str:
            return t.display if short else t.name
        name = short_name(self.name) if short and not full_name else self.name
        args = ", ".join(f"{p.name} {typ(p.type)}".strip() for p in self.params)
        res = [f"{p.name} {typ(p.type)}".strip() for p in self.results]
        if not res:
            return f"{name}({args})"
        if len(res) == 1 and not self.results[0].name:
            return f"{name}({args}) {res[0]}"
        return f"{name}({args}) ({', '.join(res)})"

    def to_dict(self) -> dict:
        return {"name": self.name, "entry": self.entry, "end": self.end, "abi": self.abi,
                "params": [p.to_dict() for p in self.params],
                "results": [p.to_dict() for p in self.results], "source": self.source,
                "entry_site": self.entry_site.to_dict(),
                "ret_sites": [s.to_dict() for s in self.ret_sites],
                "file": self.file, "line": self.line, "notes": list(self.notes)}

    @staticmethod
    def from_dict(d: dict) -> FuncSpec:
        return FuncSpec(d["name"], d["entry"], d["end"], d["abi"],
                        tuple(Param.from_dict(p) for p in d["params"]),
                        tuple(Param.from_dict(p) for p in d["results"]), d["source"],
                        Site.from_dict(d["entry_site"]),
                        tuple(Site.from_dict(s) for s in d["ret_sites"]),
                        d.get("file", ""), d.get("line", 0), tuple(d.get("notes", ())))
