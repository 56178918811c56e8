"""Where Go passes arguments and results on amd64: register ABIInternal and stack ABI0.

ABIInternal (Go 1.17+, src/cmd/compile/abi-internal.md): each argument is broken into
scalar parts (types.Part) and assigned to the next integer registers RAX, RBX, RCX,
RDI, RSI, R8, R9, R10, R11 or floating-point registers X0-X14, all-or-nothing per
argument; an argument that holds an array of length > 1 or no longer fits goes to the
stack sequence instead. Results are assigned the same way starting over from RAX/X0.
Stack-assigned values are laid out in order with Go alignment: arguments, pointer
alignment, results.

ABI0 (assembly functions, Go <= 1.16): every argument and result on the stack in the
same order and alignment, no registers.

Offsets here are from the start of the argument area, which at the function's first
instruction is 8(SP) (0(SP) holds the return address); at every RET, SP is back to its
entry value, so results are at 8+offset(SP) there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.golang.types import GoType, Part

INT_REGS = ("ax", "bx", "cx", "di", "si", "r8", "r9", "r10", "r11")  # pt_regs names
FLOAT_REGS = tuple(f"x{i}" for i in range(15))
PTR_SIZE = 8


@dataclass(frozen=True)
class Slot:
    """How one argument or result is passed.

    In registers: `regs[i]` holds `parts[i]` (an integer register's pt_regs name, or
    "xN" for an X register). On the stack: `stack_offset` from the start of the argument
    area (regs is None). A zero-sized value has neither registers nor bytes.
    """

    type: GoType
    parts: tuple[Part, ...]
    regs: tuple[str, ...] | None
    stack_offset: int | None

    @property
    def in_registers(self) -> bool:
        return self.regs is not None


@dataclass(frozen=True)
class Assignment:
    args: tuple[Slot, ...]
    results: tuple[Slot, ...]
    stack_size: int      # bytes of stack-assigned arguments and results


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a if a > 1 else n


class _Seq:
    """The stack sequence S of the spec."""

    def __init__(self) -> None:
        self.size = 0

    def add(self, t: GoType) -> int:
        self.size = _align(self.size, max(t.align, 1))
        off = self.size
        self.size += t.size
        return off

    def align_ptr(self) -> None:
        self.size = _align(self.size, PTR_SIZE)


def assign_internal(args: list[GoType], results: list[GoType]) -> Assignment:
    """ABIInternal assignment of receiver+arguments and results (abi-internal.md)."""
    seq = _Seq()
    out_args = _assign_list(args, seq)
    seq.align_ptr()
    out_results = _assign_list(results, seq)
    seq.align_ptr()
    return Assignment(tuple(out_args), tuple(out_results), seq.size)


def _assign_list(types: list[GoType], seq: _Seq) -> list[Slot]:
    ni = nf = 0
    out = []
    for t in types:
        parts = t.parts()
        if t.size == 0:
            out.append(Slot(t, (), None, seq.add(t)))
            continue
        if parts is not None:
            n_int = sum(1 for p in parts if p.cls == "int")
            n_float = len(parts) - n_int
            if ni + n_int <= len(INT_REGS) and nf + n_float <= len(FLOAT_REGS):
                regs = []
                for p in parts:
                    if p.cls == "int":
                        regs.append(INT_REGS[ni])
                        ni += 1
                    else:
                        regs.append(FLOAT_REGS[nf])
                        nf += 1
                out.append(Slot(t, parts, tuple(regs), None))
                continue
        out.append(Slot(t, parts or (), None, seq.add(t)))
    return out


def assign_abi0(args: list[GoType], results: list[GoType]) -> Assignment:
    """ABI0: everything on the stack, arguments then (pointer-aligned) results."""
    seq = _Seq()
    a = [Slot(t, t.parts() or (), None, seq.add(t)) for t in args]
    seq.align_ptr()
    r = [Slot(t, t.parts() or (), None, seq.add(t)) for t in results]
    seq.align_ptr()
    return Assignment(tuple(a), tuple(r), seq.size)
