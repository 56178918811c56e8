"""Interface values captured by trace (probes.decode.Boxed) resolved by the runtime's
type data of the traced binary: type word -> type (through the itab for non-empty
interfaces) -> a decoded value (golang.anyvalue.GoAny). Runtime addresses become ELF
addresses through the process's mappings, so PIE builds resolve too."""

from __future__ import annotations

from lumos.errors import LumosError
from lumos.golang.anyvalue import WINDOW, AnyDecoder, GoAny, Resolved
from lumos.probes.capture import (
    BOXED_FOLLOW0,
    BOXED_FOLLOW1,
    BOXED_WINDOW,
    BOXED_WORD2,
    BOXED_WORD3,
)
from lumos.targets.symbolize import Symbolizer


class IfaceResolver:
    def __init__(self, exe: str):
        self.exe = exe
        self._decoder: AnyDecoder | None = None
        self._pie = True
        self._failed = False
        self._symbolizers: dict[int | None, Symbolizer] = {}

    def _types(self) -> AnyDecoder | None:
        if self._decoder is None and not self._failed:
            try:
                from lumos.binary.elf import open_elf
                from lumos.golang.typedata import load_typedata
                elf = open_elf(self.exe)
                self._pie = elf.is_pie
                self._decoder = AnyDecoder(load_typedata(elf), (0, 0, 0))
            except LumosError:
                self._failed = True  # not Go, or no type data: words stay words
        return self._decoder

    def _symbolizer(self, pid: int | None) -> Symbolizer:
        sym = self._symbolizers.get(pid)
        if sym is None:
            sym = self._symbolizers[pid] = Symbolizer(pid, self.exe)
        return sym

    def use_maps(self, pid: int, maps) -> None:
        """A started command's mappings, read at its first instruction (it may exit
        before its events are decoded: targets.launch.Launched.maps)."""
        self._symbolizer(pid).use_maps(maps)

    def _bias(self, pid: int | None, addr: int) -> int | None:
        sym = self._symbolizer(pid)
        where = sym.vaddr_in_file(addr)
        if where is None or where[0] != self.exe and pid is not None:
            # the process is gone (a short -c command): a non-PIE loads where linked
            return None if self._pie else 0
        return addr - where[1]

    def resolve(self, v, pid: int | None) -> Resolved | None:
        """The value of a Boxed (with its words), or None when its type is unknown."""
        got = self._value(v, pid)
        return Resolved(got, (v.typ, v.data)) if got is not None else None

    def _value(self, v, pid: int | None) -> GoAny | None:
        d = self._types()
        if d is None:
            return None
        if v.typ == 0:
            return GoAny("nil", None)
        bias = self._bias(pid, v.typ)
        if bias is None:
            return None
        d.bias = bias
        typ = v.typ - bias
        if v.itab:
            typ = d.types.itab_type(typ)
            if not typ:
                return None
        # the error follows (emit_boxed) are *fs.PathError's {Op, Path, Err} layout, or
        # *os.SyscallError's {Syscall, Err} with Err's value word behind +24
        t = d.types.type_at(typ)
        name = t.name if t is not None and v.more else ""
        if name == "*fs.PathError":
            follows, bits = [v.follow, v.more[0], v.more[1]], (BOXED_FOLLOW0, BOXED_FOLLOW1,
                                                              BOXED_WORD2)
        elif name == "*os.SyscallError":
            follows, bits = [v.follow, b"", v.more[2]], (BOXED_FOLLOW0, 0, BOXED_WORD3)
        else:
            follows, bits = [v.follow, b"", b""], (BOXED_FOLLOW0, 0, 0)
        failed = frozenset([WINDOW] if v.failed & BOXED_WINDOW else []) | frozenset(
            k for k, b in enumerate(bits) if v.failed & b)
        return d.decode(typ, v.data, v.window.ljust(64, b"\0"), follows, failed)
