"""Go's traceback argument information (FUNCDATA_ArgInfo): read it, and write what the
compiler would have written for a given signature, so the two can be compared.

Every Go function with arguments carries this byte stream, stripped or not; Go's
tracebacks print `main.f(0x1, {0xc000012345, 0x5})` from it. The compiler writes it in
cmd/compile/internal/ssagen/ssa.go (EmitArgInfo), the same from Go 1.18 to 1.27:

    for each input in order (receiver first; a generic function's dictionary skipped):
      scalar:    frame offset u8, size u8        (0xfb when the offset is >= 0xf0)
      aggregate: 0xfe, its components, 0xfd      (string/interface: 2 words, slice: 3,
                                                   complex: 2 floats, array: elements,
                                                   struct: fields; empty: nothing)
    0xfc ("...") once 10 components were written, or inside an aggregate 5 levels deep;
    0xff at the end.

Frame offsets: a stack-assigned input sits at its offset in the stack sequence
(abi.assign_internal); a register-assigned one at its spill slot, which is the end of
the stack-assigned arguments and results (pointer-aligned) plus its offset in the spill
area, laid out in input order, each aligned to its type (cmd/compile/internal/abi
assignParam). Comparing the two streams tells whether a signature (from DWARF or a
user) has the same number, sizes and order of argument words as the compiled code:
what gets a register wrong when it does not. It cannot tell an int from a float word.
"""

from __future__ import annotations

from lumos.errors import BinaryFormatError
from lumos.golang.abi import assign_internal
from lumos.golang.pclntab import FUNCDATA_ARGINFO, FuncInfo
from lumos.golang.types import COMPLEX_KINDS, GoType

END_SEQ, START_AGG, END_AGG, DOTDOTDOT, OFFSET_TOO_LARGE = 0xFF, 0xFE, 0xFD, 0xFC, 0xFB
SPECIAL = 0xF0
LIMIT = 10        # abi.TraceArgsLimit: components written before "..."
MAX_DEPTH = 5     # abi.TraceArgsMaxDepth
MAX_LEN = (MAX_DEPTH * 3 + 2) * LIMIT + 1


def read(elf, md, info: FuncInfo) -> bytes | None:
    """The function's ArgInfo stream up to and including its 0xff, or None when the
    binary has none for it (no arguments, assembly, unknown moduledata layout)."""
    if md is None or md.gofunc is None or len(info.funcdata) <= FUNCDATA_ARGINFO \
            or info.funcdata[FUNCDATA_ARGINFO] == 0xFFFFFFFF:
        return None
    try:
        b = elf.read_vaddr(md.gofunc + info.funcdata[FUNCDATA_ARGINFO], MAX_LEN)
    except BinaryFormatError:
        return None
    end = _stream_end(b)
    return b[:end] if end is not None else None


def _stream_end(b: bytes) -> int | None:
    i = 0
    while i < len(b):
        op = b[i]
        if op == END_SEQ:
            return i + 1
        i += 2 if op < SPECIAL else 1
    return None


def expected(params: list[GoType], results: list[GoType], generic: bool = False,
             spill_area: int | None = None) -> bytes:
    """The stream the compiler writes for a function with these input and result types
    (results matter only when some are stack-assigned: they move the spill area).
    spill_area overrides where the spill area starts (for a prefix of the inputs)."""
    a = assign_internal(params, results)
    if spill_area is None:
        spill_area = a.stack_size  # assign_internal already pointer-aligns it
    spill = 0
    offsets = []
    for slot in a.args:
        if slot.in_registers:
            al = max(slot.type.align, 1)
            spill = (spill + al - 1) // al * al
            offsets.append(spill_area + spill)
            spill += slot.type.size
        else:
            offsets.append(slot.stack_offset or 0)
    w = _Writer()
    for k, (t, off) in enumerate(zip(params, offsets, strict=True)):
        if generic and k == 0:
            continue
        if not w.visit(off, t, 0):
            break
    w.out.append(END_SEQ)
    return bytes(w.out)


class _Writer:
    def __init__(self) -> None:
        self.out: list[int] = []
        self.n = 0

    def scalar(self, size: int, off: int) -> None:
        if off >= SPECIAL:
            self.out.append(OFFSET_TOO_LARGE)
        else:
            self.out += [off, size & 0xFF]
        self.n += 1

    def visit(self, off: int, t: GoType, depth: int) -> bool:
        if self.n >= LIMIT:
            self.out.append(DOTDOTDOT)
            return False
        k = t.kind
        if k not in ("struct", "array", "string", "slice", "interface") \
                and k not in COMPLEX_KINDS:
            self.scalar(t.size, off)
            return True
        self.out.append(START_AGG)
        depth += 1
        if depth >= MAX_DEPTH:
            self.out += [DOTDOTDOT, END_AGG]
            self.n += 1
            return True
        if k in ("string", "interface"):
            _ = self.scalar_visit(off, 8) and self.scalar_visit(off + 8, 8)
        elif k == "slice":
            _ = self.scalar_visit(off, 8) and self.scalar_visit(off + 8, 8) \
                and self.scalar_visit(off + 16, 8)
        elif k in COMPLEX_KINDS:
            h = t.size // 2
            _ = self.scalar_visit(off, h) and self.scalar_visit(off + h, h)
        elif k == "array":
            if t.length == 0 or t.elem is None:
                self.n += 1
            else:
                for i in range(t.length):
                    if not self.visit(off + i * t.elem.size, t.elem, depth):
                        break
        else:
            if not t.fields:
                self.n += 1
            for f in t.fields:
                if not self.visit(off + f.offset, f.type, depth):
                    break
        self.out.append(END_AGG)
        return True

    def scalar_visit(self, off: int, size: int) -> bool:
        if self.n >= LIMIT:
            self.out.append(DOTDOTDOT)
            return False
        self.scalar(size, off)
        return True


def parse(stream: bytes) -> tuple[list, bool]:
    """The stream as a tree: per top-level argument a node, (frame offset, size) for a
    scalar ((-1, 0) when the offset was too large to write), a list of nodes for an
    aggregate, "..." where Go stopped describing; and whether the top level was cut."""
    root: list = []
    stack = [root]
    truncated = False
    i = 0
    while i < len(stream):
        op = stream[i]
        i += 1
        if op == END_SEQ:
            break
        if op == START_AGG:
            node: list = []
            stack[-1].append(node)
            stack.append(node)
        elif op == END_AGG:
            if len(stack) > 1:
                stack.pop()
        elif op == DOTDOTDOT:
            if len(stack) == 1:
                truncated = True
            else:
                stack[-1].append("...")
        elif op == OFFSET_TOO_LARGE:
            stack[-1].append((-1, 0))
        elif op < SPECIAL and i < len(stream):
            stack[-1].append((op, stream[i]))
            i += 1
    return root, truncated


def _scalars(node) -> list[tuple[int, int]]:
    if isinstance(node, tuple):
        return [node]
    if isinstance(node, list):
        return [c for n in node for c in _scalars(n)]
    return []


def groups(stream: bytes) -> tuple[list[tuple[bool, list[tuple[int, int]]]], bool]:
    """([(is aggregate, [(frame offset, size)...]) per top-level argument], truncated):
    parse() flattened per argument."""
    nodes, truncated = parse(stream)
    return [(isinstance(n, list), _scalars(n)) for n in nodes], truncated


def describe(stream: bytes) -> str:
    """The stream the way a traceback shows argument words: (8, {8, 8}, 4)."""
    gs, truncated = groups(stream)
    parts = []
    for agg, comps in gs:
        sizes = ", ".join(str(s) for _, s in comps)
        parts.append("{" + sizes + "}" if agg else sizes)
    if truncated:
        parts.append("...")
    return "(" + ", ".join(parts) + ")"


def agrees(actual: bytes, params: list[GoType], results: list[GoType],
           generic: bool = False) -> bool:
    """Do these types give the argument words the binary says the function takes?"""
    return expected(params, results, generic) == actual


DICT = GoType("pointer", 8, "*uint8")   # a generic function's dictionary: *[N]uintptr


def raw_type(node) -> GoType | None:
    """A placeholder type for one argument known only from ArgInfo (a parse() node): a
    word of its size, or a struct of such words nested as Go described it (integer
    words: ArgInfo cannot tell floats). None where Go stopped describing it."""
    from lumos.golang.types import Field, alignment, word
    if isinstance(node, tuple):
        return word(node[1]) if node[1] > 0 else None
    if not isinstance(node, list):
        return None
    scalars = _scalars(node)
    base = scalars[0][0] if scalars else 0
    fields = []
    for k, child in enumerate(node):
        t = raw_type(child)
        if t is None:
            return None
        first = _scalars(child)
        fields.append(Field(f"w{k}", first[0][0] - base if first else 0, t))
    size = max((f.offset + f.type.size for f in fields), default=0)
    align = alignment("struct", size, None, tuple(fields))
    size = (size + align - 1) // align * align
    name = "{" + ", ".join(f.name for f in fields) + "}"
    return GoType("struct", size, name, align, fields=tuple(fields))


def fill_missing(actual: bytes, inputs: list[GoType], results: list[GoType],
                 generic: bool, limit: int = 512):
    """Where DWARF left out inputs, as Go 1.19 does for unnamed and blank parameters
    (`func (noCopy) Lock()`, `func f(_ *T, x int)`): yield every input list that
    reproduces the binary's ArgInfo exactly, each as a list holding, in order, the
    index into `inputs` of a kept input or the raw placeholder type (from ArgInfo) of
    one left out. Several can fit when the words are alike (`f(_ context.Context, name
    string)`: two words each): the caller tells them apart by where DWARF says the kept
    inputs arrive. Nothing is yielded when ArgInfo was cut short ("...")."""
    from itertools import combinations
    nodes, truncated = parse(actual)
    lead = 1 if generic and inputs else 0        # the dictionary: not in ArgInfo
    missing = len(nodes) - (len(inputs) - lead)
    if truncated or missing <= 0:
        return
    placeholders = [raw_type(nd) for nd in nodes]
    for n, where in enumerate(combinations(range(len(nodes)), missing)):
        if n >= limit:
            return
        if any(placeholders[w] is None for w in where):
            continue
        order: list[int | GoType] = list(range(lead))
        j = lead
        for k in range(len(nodes)):
            if k in where:
                order.append(placeholders[k])
            else:
                order.append(j)
                j += 1
        if agrees(actual, _types(order, inputs), results, generic):
            yield order


def _types(order: list[int | GoType], inputs: list[GoType]) -> list[GoType]:
    return [inputs[k] if isinstance(k, int) else k for k in order]
