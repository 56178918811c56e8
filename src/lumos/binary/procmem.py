"""A traced process's memory through /proc/PID/mem: USDT semaphores, the one write lumos
ever makes to a process it traces (and only when the kernel cannot do it itself).

A semaphore is a u16 in the file's writable data (`.probes`); in a running process it
lives wherever that file's data segment was mapped, found through /proc/PID/maps by
(device, inode) and file offset, so PIEs, shared libraries and files reached through
another mount namespace all resolve the same way.
"""

from __future__ import annotations

import os
import struct

from lumos.binary.procmaps import ptrace_refusal, read_maps
from lumos.errors import TargetError

U16 = struct.Struct("<H")


def mapped_address(pid: int, path: str, file_offset: int) -> int | None:
    """The address in PID of `path`'s byte at file_offset, in a private writable mapping
    of that file (its data segment); None when the process has not mapped it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    for m in read_maps(pid):
        if m.inode != st.st_ino or "w" not in m.perms or "p" not in m.perms:
            continue
        if not m.path.startswith("/") or _device_differs(m.path, st):
            continue
        if m.offset <= file_offset < m.offset + (m.end - m.start):
            return m.start + file_offset - m.offset
    return None


def _device_differs(path: str, st: os.stat_result) -> bool:
    try:
        return os.stat(path).st_dev != st.st_dev
    except OSError:
        return False  # another mount namespace: the inode match has to do


def add_u16(pid: int, addr: int, delta: int) -> int:
    """*(u16 *)addr += delta in process pid (clamped at 0); returns the new value.

    A read-modify-write of two bytes: another tracer writing the same semaphore at the
    same instant could lose one update (BCC has the same window); the kernel's
    ref_ctr_offset, preferred wherever it works, has none.
    """
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    except FileNotFoundError:
        raise TargetError(f"PID {pid} is not running") from None
    except PermissionError:
        raise ptrace_refusal(pid, f"/proc/{pid}/mem") from None
    try:
        raw = os.pread(fd, 2, addr)
        if len(raw) != 2:
            raise TargetError(f"PID {pid}: cannot read its memory at {addr:#x}")
        value = max(0, min(0xFFFF, U16.unpack(raw)[0] + delta))
        os.pwrite(fd, U16.pack(value), addr)
        return value
    except OSError as e:
        raise TargetError(f"PID {pid}: cannot write its memory at {addr:#x}: "
                          f"{e.strerror}") from None
    finally:
        os.close(fd)


def read_u16(pid: int, addr: int) -> int:
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as f:
        f.seek(addr)
        return U16.unpack(f.read(2))[0]


def processes_mapping(path: str) -> list[int]:
    """PIDs of the processes that have `path` mapped now (by device and inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/maps") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) > 5 and int(parts[4]) == st.st_ino and \
                            os.path.realpath(parts[5].strip()) == os.path.realpath(path):
                        out.append(int(name))
                        break
        except (OSError, ValueError):
            continue
    return out
