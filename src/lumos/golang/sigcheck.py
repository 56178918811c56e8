"""A signature the user wrote, checked against what the binary says about the function.

The binary's own records, in order of trust: Go's traceback argument info (ArgInfo:
the compiler's list of argument words, present stripped or not: arginfo.py), DWARF's
parameter and result types when the binary has them, and for ABI0 assembly the size of
its argument frame in the pclntab.

What a Go developer expects, and so what lumos does:
  - The word layout differs (three strings given for a function taking one: lumos
    would read lengths out of other arguments' registers, `...(+824638365636)`): refuse,
    one line saying what the binary says instead (exit 2). A wrong value is worse than
    none; leaving the signature out shows the raw words the binary describes.
  - The layout agrees but the types or names differ from DWARF's (`n int` where DWARF
    says `n uint64`, `p uintptr` for a pointer): decode as the user said (that can be
    the point: a pointer shown as a number) and warn, one line naming both.
  - Results: ArgInfo does not cover them; DWARF does. A result layout DWARF contradicts
    is refused like an argument one; none written is fine (none are decoded); without
    DWARF results are not checked.
  - Nothing to check against (assembly with no frame size, no DWARF): a note says so.
"""

from __future__ import annotations

from lumos.errors import UsageError
from lumos.golang import arginfo
from lumos.golang.abi import assign_abi0, assign_internal
from lumos.golang.model import ABI0, Param


class SignatureError(UsageError):
    """A user signature whose argument words contradict the binary."""


def _sig(params, results) -> str:
    args = ", ".join(f"{p.name} {p.type.display}".strip() for p in params)
    res = ", ".join(f"{p.name} {p.type.display}".strip() for p in results)
    return f"({args})" + (f" ({res})" if res else "")


def _layout(abi: str, params: list[Param], results: list[Param]):
    assign = assign_abi0 if abi == ABI0 else assign_internal
    a = assign([p.type for p in params], [p.type for p in results])

    def of(slots):
        return tuple((s.regs, s.stack_offset, s.type.size,
                      tuple((p.offset, p.size, p.cls) for p in s.parts)) for s in slots)
    return of(a.args), of(a.results)


def check(name: str, abi: str, params: list[Param], results: list[Param], *,
          actual: bytes | None, args_size: int, generic: bool,
          dwarf: tuple[list[Param], list[Param]] | None) -> list[str]:
    """Warnings (one line each) about the user's signature `params`/`results` of the
    function `name`; raises SignatureError when its argument words contradict the
    binary (see the module docstring)."""
    warnings: list[str] = []
    checked = False
    inputs = [p.type for p in params]
    rtypes = [p.type for p in results]
    if abi != ABI0 and actual is not None:
        checked = True
        want = arginfo.expected(inputs, rtypes, generic)
        if want != actual:
            got_nodes, _ = arginfo.parse(want)
            act_nodes, truncated = arginfo.parse(actual)
            if not (truncated and got_nodes[:len(act_nodes)] == act_nodes):
                raise SignatureError(
                    f"{name}: the signature gives argument words "
                    f"{arginfo.describe(want)}, the binary says {arginfo.describe(actual)} "
                    "(fix the signature, or leave it out to see the raw words)")
            warnings.append(f"{name}: Go describes only the first {len(act_nodes)} "
                            "arguments; the signature's others are not checked")
    if abi == ABI0 and args_size >= 0:
        checked = True
        size = assign_abi0(inputs, rtypes).stack_size
        if size != args_size:
            raise SignatureError(
                f"{name}: the signature's arguments and results take {size} bytes of "
                f"stack, the function's argument frame has {args_size}")
    if dwarf is not None:
        checked = True
        dparams, dresults = dwarf
        if not results:   # none written: none decoded, which shows nothing wrong
            dresults = []
        mine, theirs = _layout(abi, params, results), _layout(abi, dparams, dresults)
        if mine != theirs:
            raise SignatureError(
                f"{name}: the signature {_sig(params, results)} does not fit DWARF's "
                f"{_sig(dparams, dresults)} (fix the signature, or leave it out)")
        if _sig(params, results) != _sig(dparams, dresults):
            warnings.append(f"{name}: the signature {_sig(params, results)} differs from "
                            f"DWARF's {_sig(dparams, dresults)}: decoding as the signature "
                            "says")
    if not checked:
        warnings.append(f"{name}: nothing in the binary to check the signature against")
    return warnings
