"""BPF maps: a MapSpec (pure data) becomes a Map (an owned kernel object).

Keys and values are bytes; per-CPU maps return one value per possible CPU. Iteration
uses GET_NEXT_KEY, so entries added or removed meanwhile may be seen or skipped, as
with every BPF map walker.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator
from dataclasses import dataclass

from lumos import caps
from lumos.bpf import sys as bsys
from lumos.bpf.sys import FD
from lumos.errors import BPFError

PERCPU_TYPES = (bsys.BPF_MAP_TYPE_PERCPU_ARRAY, bsys.BPF_MAP_TYPE_PERCPU_HASH,
                bsys.BPF_MAP_TYPE_LRU_PERCPU_HASH)


@dataclass(frozen=True)
class MapSpec:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0


def hash_spec(name, key_size, value_size, max_entries, lru=False, percpu=False,
              flags: int = 0) -> MapSpec:
    if lru:
        kind = bsys.BPF_MAP_TYPE_LRU_PERCPU_HASH if percpu else bsys.BPF_MAP_TYPE_LRU_HASH
    else:
        kind = bsys.BPF_MAP_TYPE_PERCPU_HASH if percpu else bsys.BPF_MAP_TYPE_HASH
    return MapSpec(name, kind, key_size, value_size, max_entries, flags)


def array_spec(name, value_size, max_entries, percpu=False) -> MapSpec:
    kind = bsys.BPF_MAP_TYPE_PERCPU_ARRAY if percpu else bsys.BPF_MAP_TYPE_ARRAY
    return MapSpec(name, kind, 4, value_size, max_entries)


def ringbuf_spec(name: str, size_bytes: int) -> MapSpec:
    """size_bytes must be a power of two and a multiple of the page size."""
    if size_bytes & (size_bytes - 1) or size_bytes % 4096:
        raise ValueError(f"ring buffer size {size_bytes} is not a power-of-two number of pages")
    return MapSpec(name, bsys.BPF_MAP_TYPE_RINGBUF, 0, 0, size_bytes)


def stack_trace_spec(name: str, max_depth: int, max_entries: int) -> MapSpec:
    return MapSpec(name, bsys.BPF_MAP_TYPE_STACK_TRACE, 4, 8 * max_depth, max_entries)


class Map:
    """A kernel BPF map. Close it (or use `with`); closing twice is harmless."""

    def __init__(self, spec: MapSpec, fd: FD):
        self.spec = spec
        self.name = spec.name
        self._fd = fd
        self.percpu = spec.type in PERCPU_TYPES
        self._ncpus = bsys.possible_cpus() if self.percpu else 1
        self._stride = (spec.value_size + 7) & ~7 if self.percpu else spec.value_size

    @property
    def fd(self) -> int:
        return self._fd.fd

    def close(self) -> None:
        self._fd.close()

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Map({self.name!r}, fd={self._fd})"

    # -- elements ------------------------------------------------------------------

    def _key_buf(self, key: bytes):
        if len(key) != self.spec.key_size:
            raise BPFError(f"map {self.name}: key of {len(key)} bytes, expected "
                           f"{self.spec.key_size}")
        return ctypes.create_string_buffer(key, len(key))

    def lookup_raw(self, key: bytes) -> bytes | None:
        """The value as the kernel returns it (all CPUs for per-CPU maps), or None."""
        kbuf = self._key_buf(key)
        vbuf = ctypes.create_string_buffer(self._stride * self._ncpus)
        attr = bsys.MapElemAttr(map_fd=self.fd, key=bsys._ptr(kbuf), value=bsys._ptr(vbuf))
        try:
            bsys.bpf(bsys.BPF_MAP_LOOKUP_ELEM, attr)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise BPFError(f"map {self.name}: lookup: {e.strerror}", e.errno) from None
        return vbuf.raw

    def lookup(self, key: bytes) -> bytes | None:
        raw = self.lookup_raw(key)
        if raw is None:
            return None
        return raw[: self.spec.value_size]

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        raw = self.lookup_raw(key)
        if raw is None:
            return None
        size, stride = self.spec.value_size, self._stride
        return [raw[i * stride: i * stride + size] for i in range(self._ncpus)]

    def update(self, key: bytes, value: bytes, flags: int = bsys.BPF_ANY) -> None:
        kbuf = self._key_buf(key)
        if self.percpu and len(value) == self.spec.value_size:
            value = (value + bytes(self._stride - len(value))) * self._ncpus
        vbuf = ctypes.create_string_buffer(value, len(value))
        attr = bsys.MapElemAttr(map_fd=self.fd, key=bsys._ptr(kbuf), value=bsys._ptr(vbuf),
                                flags=flags)
        try:
            bsys.bpf(bsys.BPF_MAP_UPDATE_ELEM, attr)
        except OSError as e:
            raise BPFError(f"map {self.name}: update: {e.strerror}", e.errno) from None

    def delete(self, key: bytes) -> bool:
        kbuf = self._key_buf(key)
        attr = bsys.MapElemAttr(map_fd=self.fd, key=bsys._ptr(kbuf))
        try:
            bsys.bpf(bsys.BPF_MAP_DELETE_ELEM, attr)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise BPFError(f"map {self.name}: delete: {e.strerror}", e.errno) from None
        return True

    def keys(self) -> Iterator[bytes]:
        size = self.spec.key_size
        cur = None
        nbuf = ctypes.create_string_buffer(size)
        while True:
            kbuf = ctypes.create_string_buffer(cur, size) if cur is not None else None
            attr = bsys.MapElemAttr(map_fd=self.fd, key=bsys._ptr(kbuf), value=bsys._ptr(nbuf))
            try:
                bsys.bpf(bsys.BPF_MAP_GET_NEXT_KEY, attr)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return
                raise BPFError(f"map {self.name}: next key: {e.strerror}", e.errno) from None
            cur = nbuf.raw
            yield cur

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def items_percpu(self) -> Iterator[tuple[bytes, list[bytes]]]:
        for key in list(self.keys()):
            values = self.lookup_percpu(key)
            if values is not None:
                yield key, values

    def clear(self) -> None:
        for key in list(self.keys()):
            self.delete(key)

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())


def create_map(spec: MapSpec) -> Map:
    attr = bsys.MapCreateAttr(map_type=spec.type, key_size=spec.key_size,
                              value_size=spec.value_size, max_entries=spec.max_entries,
                              map_flags=spec.flags,
                              map_name=spec.name.encode()[: bsys.BPF_OBJ_NAME_LEN - 1])
    try:
        fd = bsys.bpf(bsys.BPF_MAP_CREATE, attr)
    except OSError as e:
        if e.errno == errno.EPERM and (gone := caps.missing("CAP_BPF")):
            raise caps.refusal(f"create map {spec.name}", gone) from None
        raise BPFError(f"create map {spec.name}: {e.strerror}", e.errno) from None
    return Map(spec, FD(fd))
