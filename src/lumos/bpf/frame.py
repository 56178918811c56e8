"""One declaration of a program's stack memory: named slots below the frame pointer.

A BPF program has 512 bytes of stack (FP-512 .. FP-1). Emitters ask a Frame for a slot
by name instead of writing bare offsets, so two emitters cannot silently overlap and a
listing can say which slot an offset is:

    frame = a.frame                     # every Asm carries one
    goid = frame.slot("goid", 8)        # -8
    key = frame.slot("pair_key", 16)    # -24: 16 bytes from FP-24 to FP-9
    frame.slot("goid", 8)               # the same slot again (same name, same size)
    frame.describe(key)                 # 'pair_key'

Slots are allocated downwards in the order asked, aligned to their alignment (8 unless
told): the same emitters in the same order give the same offsets, so programs and their
golden listings are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.errors import AsmError

STACK_BYTES = 512


@dataclass(frozen=True)
class Slot:
    name: str
    offset: int   # from FP (negative)
    size: int


class Frame:
    def __init__(self, limit: int = STACK_BYTES):
        self.limit = limit
        self._slots: dict[str, Slot] = {}
        self._used = 0

    def slot(self, name: str, size: int, align: int = 8) -> int:
        """FP-relative offset of the slot `name` (allocated on first ask)."""
        if name in self._slots:
            s = self._slots[name]
            if s.size != size:
                raise AsmError(f"stack slot {name!r} asked for as {size} bytes, "
                               f"allocated as {s.size}")
            return s.offset
        if size <= 0:
            raise AsmError(f"stack slot {name!r}: size {size}")
        used = -(-(self._used + size) // align) * align
        if used > self.limit:
            raise AsmError(f"stack slot {name!r} ({size} bytes) does not fit: "
                           f"{self._used} of {self.limit} bytes in use "
                           f"({', '.join(self._slots)})")
        self._used = used
        self._slots[name] = Slot(name, -used, size)
        return -used

    def has(self, name: str) -> bool:
        return name in self._slots

    def __getitem__(self, name: str) -> int:
        return self._slots[name].offset

    @property
    def used(self) -> int:
        return self._used

    @property
    def slots(self) -> list[Slot]:
        return sorted(self._slots.values(), key=lambda s: -s.offset)

    def describe(self, offset: int) -> str:
        """The slot covering FP+offset, e.g. 'pair_key+8'."""
        for s in self._slots.values():
            if s.offset <= offset < s.offset + s.size:
                return s.name if offset == s.offset else f"{s.name}+{offset - s.offset}"
        return f"FP{offset:+d}"

    def layout(self) -> str:
        """One line per slot, for program listings."""
        return "\n".join(f"  FP{s.offset:+5d} .. FP{s.offset + s.size - 1:+5d}  {s.name}"
                         for s in sorted(self._slots.values(), key=lambda s: s.offset))
