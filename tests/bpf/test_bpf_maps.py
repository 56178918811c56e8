"""Maps on the real kernel: every type lumos uses, created, read, written, walked."""

import struct

import pytest

from lumos.bpf import sys as bsys
from lumos.bpf.maps import (
    MapSpec,
    array_spec,
    create_map,
    hash_spec,
    ringbuf_spec,
    stack_trace_spec,
)
from lumos.errors import BPFError


def k32(i):
    return struct.pack("<I", i)


def u64(i):
    return struct.pack("<Q", i)


@pytest.mark.parametrize("lru", [False, True])
def test_hash_crud_and_iteration(lru):
    with create_map(hash_spec("h", 4, 8, 64, lru=lru)) as m:
        for i in range(10):
            m.update(k32(i), u64(i * i))
        assert m.lookup(k32(3)) == u64(9)
        assert m.lookup(k32(99)) is None
        assert sorted(struct.unpack("<I", k)[0] for k in m) == list(range(10))
        assert m.delete(k32(3)) and not m.delete(k32(3))
        assert len(m) == 9
        m.clear()
        assert len(m) == 0


def test_noexist_flag_refuses_overwrite():
    with create_map(hash_spec("h", 4, 8, 4)) as m:
        m.update(k32(1), u64(1))
        with pytest.raises(BPFError, match="update"):
            m.update(k32(1), u64(2), bsys.BPF_NOEXIST)


def test_array_and_percpu_array():
    with create_map(array_spec("a", 8, 4)) as m:
        assert m.lookup(k32(0)) == u64(0)
        m.update(k32(2), u64(5))
        assert dict(m.items())[k32(2)] == u64(5)
    with create_map(array_spec("pa", 8, 2, percpu=True)) as m:
        m.update(k32(1), u64(7))  # one value: written to every CPU
        values = m.lookup_percpu(k32(1))
        assert len(values) == bsys.possible_cpus()
        assert all(v == u64(7) for v in values)


def test_percpu_hash_and_wrong_key_size():
    with create_map(hash_spec("ph", 8, 4, 8, percpu=True)) as m:
        m.update(u64(1), struct.pack("<I", 3))
        assert m.lookup_percpu(u64(1))[0] == struct.pack("<I", 3)
        with pytest.raises(BPFError, match="key of 4 bytes"):
            m.lookup(k32(1))


def test_ringbuf_and_stack_trace_maps_create():
    create_map(ringbuf_spec("rb", 1 << 16)).close()
    create_map(stack_trace_spec("st", 127, 128)).close()
    with pytest.raises(ValueError):
        ringbuf_spec("rb", 5000)


def test_bad_spec_is_an_error_not_a_crash():
    with pytest.raises(BPFError, match="create map"):
        create_map(MapSpec("bad", bsys.BPF_MAP_TYPE_HASH, 0, 8, 1))


def test_close_twice_and_use_after_close():
    m = create_map(array_spec("a", 8, 1))
    m.close()
    m.close()
    with pytest.raises(BPFError, match="closed"):
        m.lookup(k32(0))
