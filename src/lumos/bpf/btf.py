"""Reading the kernel's own BTF (/sys/kernel/btf/vmlinux): struct layouts and enums.

This is what replaces kernel headers: the offset of `task_struct.thread.fsbase` or the
value of `BPF_FUNC_ringbuf_reserve` comes from the running kernel, not from a header
that may not match it. One pass indexes where every type record starts; names and
members are decoded only for the types asked about.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

from lumos.errors import BinaryFormatError, NotSupportedError

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_FWD, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 7, 8, 9, 10, 11
KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_FLOAT = 12, 13, 14, 15, 16
KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 17, 18, 19

# Bytes of trailing data per kind: fixed, or per vlen entry.
_FIXED_EXTRA = {KIND_INT: 4, KIND_ARRAY: 12, KIND_VAR: 4, KIND_DECL_TAG: 4}
_PER_MEMBER = {KIND_STRUCT: 12, KIND_UNION: 12, KIND_ENUM: 8, KIND_FUNC_PROTO: 8,
               KIND_DATASEC: 12, KIND_ENUM64: 12}
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int


class BTF:
    """A parsed BTF blob. Type ids start at 1; 0 is void."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BinaryFormatError("BTF: too short", 0)
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BinaryFormatError("BTF: bad magic", 0)
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._data = data
        self._types_start = hdr_len + type_off
        self._types_end = self._types_start + type_len
        self._str_start = hdr_len + str_off
        self._str_end = self._str_start + str_len
        if self._types_end > len(data) or self._str_end > len(data):
            raise BinaryFormatError("BTF: section outside the blob", 8)
        self._offsets = self._index()

    def _index(self) -> list[int]:
        offsets = [0]  # id 0 = void
        data, pos, end = self._data, self._types_start, self._types_end
        unpack = struct.unpack_from
        while pos < end:
            offsets.append(pos)
            info = unpack("<I", data, pos + 4)[0]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            pos += 12 + _FIXED_EXTRA.get(kind, 0) + _PER_MEMBER.get(kind, 0) * vlen
        return offsets

    def _str(self, off: int) -> str:
        start = self._str_start + off
        end = self._data.index(b"\0", start)
        return self._data[start:end].decode()

    def _head(self, type_id: int) -> tuple[str, int, int, int, int]:
        """(name, kind, vlen, kind_flag, size_or_type) of a type."""
        pos = self._offsets[type_id]
        name_off, info, size_or_type = struct.unpack_from("<III", self._data, pos)
        return (self._str(name_off), (info >> 24) & 0x1F, info & 0xFFFF, info >> 31,
                size_or_type)

    @property
    def num_types(self) -> int:
        return len(self._offsets) - 1

    @cached_property
    def _by_name(self) -> dict[str, list[int]]:
        names: dict[str, list[int]] = {}
        data, unpack = self._data, struct.unpack_from
        for tid in range(1, len(self._offsets)):
            name_off = unpack("<I", data, self._offsets[tid])[0]
            if name_off:
                names.setdefault(self._str(name_off), []).append(tid)
        return names

    def find(self, name: str, kind: int) -> int:
        for tid in self._by_name.get(name, ()):
            if self._head(tid)[1] == kind:
                return tid
        raise KeyError(f"BTF has no {name!r} of kind {kind}")

    def resolve(self, type_id: int) -> int:
        """Strip typedefs and qualifiers."""
        while type_id:
            _, kind, _, _, nxt = self._head(type_id)
            if kind not in _MODIFIERS:
                break
            type_id = nxt
        return type_id

    def members(self, type_id: int) -> list[Member]:
        _, kind, vlen, kind_flag, _ = self._head(type_id)
        if kind not in (KIND_STRUCT, KIND_UNION):
            raise KeyError(f"type {type_id} is not a struct or union")
        pos = self._offsets[type_id] + 12
        out = []
        for i in range(vlen):
            name_off, mtype, off = struct.unpack_from("<III", self._data, pos + 12 * i)
            if kind_flag:
                out.append(Member(self._str(name_off), mtype, off & 0xFFFFFF, off >> 24))
            else:
                out.append(Member(self._str(name_off), mtype, off, 0))
        return out

    def size_of(self, type_id: int) -> int:
        type_id = self.resolve(type_id)
        _, kind, _, _, size = self._head(type_id)
        if kind == KIND_PTR:
            return 8
        if kind == KIND_ARRAY:
            elem, _, n = struct.unpack_from("<III", self._data, self._offsets[type_id] + 12)
            return self.size_of(elem) * n
        return size

    def member_offset(self, struct_name: str, path: str) -> tuple[int, int]:
        """(byte offset, size) of a dotted member path, e.g. ('task_struct', 'thread.fsbase').

        Anonymous unions and structs on the way are searched too, as C does.
        """
        tid = self.find(struct_name, KIND_STRUCT)
        total_bits = 0
        for part in path.split("."):
            found = self._find_member(self.resolve(tid), part)
            if found is None:
                raise KeyError(f"{struct_name} has no member {path!r}")
            bits, tid = found
            total_bits += bits
        return total_bits // 8, self.size_of(tid)

    def _find_member(self, type_id: int, name: str) -> tuple[int, int] | None:
        for m in self.members(type_id):
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name:  # anonymous struct/union: C lets its members be named directly
                inner = self.resolve(m.type_id)
                if self._head(inner)[1] in (KIND_STRUCT, KIND_UNION):
                    found = self._find_member(inner, name)
                    if found is not None:
                        return m.bit_offset + found[0], found[1]
        return None

    def func_params(self, proto_id: int) -> list[tuple[str, int]]:
        """(name, type id) of each parameter of a FUNC_PROTO (names are often empty)."""
        _, kind, vlen, _, _ = self._head(proto_id)
        if kind != KIND_FUNC_PROTO:
            raise KeyError(f"type {proto_id} is not a function prototype")
        pos = self._offsets[proto_id] + 12
        return [(self._str(n), t) for n, t in
                (struct.unpack_from("<II", self._data, pos + 8 * i) for i in range(vlen))]

    def type_str(self, type_id: int) -> str:
        """A C-like spelling of a type, enough to check a prototype: 'struct task_struct *'."""
        type_id = self.resolve(type_id)
        if type_id == 0:
            return "void"
        name, kind, _, _, nxt = self._head(type_id)
        if kind == KIND_PTR:
            return self.type_str(nxt) + " *"
        prefix = {KIND_STRUCT: "struct ", KIND_UNION: "union ", KIND_ENUM: "enum ",
                  KIND_FWD: "struct "}.get(kind, "")
        return prefix + (name or "?")

    def enum_values(self, enum_name: str) -> dict[str, int]:
        tid = self.find(enum_name, KIND_ENUM)
        _, _, vlen, kind_flag, _ = self._head(tid)
        pos = self._offsets[tid] + 12
        out = {}
        for i in range(vlen):
            # kind_flag marks a signed enum
            name_off, val = struct.unpack_from("<Ii" if kind_flag else "<II",
                                               self._data, pos + 8 * i)
            out[self._str(name_off)] = val
        return out


_vmlinux: BTF | None = None


def raw_tracepoint_args(btf: BTF, name: str) -> list[str]:
    """The arguments a raw tracepoint program sees in ctx->args[], spelled as C types, from
    the kernel's `btf_trace_<name>` typedef (its first parameter, void *__data, is not
    passed). Raises NotSupportedError naming the tracepoint when BTF does not have it."""
    try:
        tid = btf.resolve(btf.find(f"btf_trace_{name}", KIND_TYPEDEF))
        _, kind, _, _, proto = btf._head(tid)
        if kind != KIND_PTR:
            raise KeyError(name)
        params = btf.func_params(btf.resolve(proto))
    except KeyError:
        raise NotSupportedError(f"raw tracepoint {name}", "",
                                f"vmlinux BTF has no btf_trace_{name} prototype") from None
    return [btf.type_str(t) for _, t in params[1:]]


def load_vmlinux_btf() -> BTF:
    """The running kernel's BTF, parsed once per process."""
    global _vmlinux
    if _vmlinux is None:
        try:
            with open(VMLINUX_BTF, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotSupportedError("kernel BTF", "5.4",
                                    f"{VMLINUX_BTF} is missing (CONFIG_DEBUG_INFO_BTF)") from None
        _vmlinux = BTF(data)
    return _vmlinux
