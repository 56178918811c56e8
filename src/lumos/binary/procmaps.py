"""Processes as tracers see them: /proc/PID/exe, /proc/PID/maps, runtime address -> file.

A uprobe is attached to (inode, file offset), so attaching needs no load bias; turning a
runtime address (a stack frame, a funcval PC) back into a symbol does, and that goes
through the mapping: runtime address -> file offset -> virtual address in the ELF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lumos import caps
from lumos.errors import LumosError, TargetError


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms


def check_pid(pid: int) -> None:
    """Raise TargetError unless PID names a running process."""
    if pid <= 0:
        raise TargetError(f"PID {pid} is not valid")
    if not os.path.exists(f"/proc/{pid}"):
        raise TargetError(f"PID {pid} is not running")
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        raise TargetError(f"PID {pid} is not running") from None
    if state in ("Z", "X"):
        raise TargetError(f"PID {pid} has exited (zombie)")
    tgid = _tgid(pid)
    if tgid is not None and tgid != pid:  # /proc/TID exists too, unlisted
        raise TargetError(f"{pid} is a thread of PID {tgid}, not a process: give -p {tgid}")


def _tgid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def ptrace_refusal(pid: int, what: str) -> LumosError:
    """Reading another user's (or a more privileged) process needs ptrace access."""
    if caps.has("CAP_SYS_PTRACE"):
        return TargetError(f"PID {pid}: reading {what} was refused (an LSM policy?)")
    return caps.refusal(f"PID {pid} is another user's or a more privileged process: "
                        f"reading {what}", ["CAP_SYS_PTRACE"])


def exe_of(pid: int) -> str:
    """The executable of a running process, as a path the tracer can open."""
    check_pid(pid)
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        raise ptrace_refusal(pid, "its executable") from None
    except OSError as e:
        raise TargetError(f"PID {pid}: cannot read its executable: {e.strerror}") from None
    if path.endswith(" (deleted)"):
        # The file was replaced on disk; /proc/PID/exe still opens the running image.
        return f"/proc/{pid}/exe"
    try:
        running = os.stat(f"/proc/{pid}/exe")
    except OSError as e:
        raise TargetError(f"PID {pid}: cannot read its executable: {e.strerror}") from None
    # The path is the process's own view: in another mount namespace or chroot it may
    # name nothing here, or another file (a rebuilt binary at the same path). Probes go
    # on the inode that runs, reached through the process's root, else /proc/PID/exe.
    for candidate in (path, f"/proc/{pid}/root{path}"):
        if _same_file(candidate, running):
            return candidate
    return f"/proc/{pid}/exe"


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        mine = os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


def read_maps(pid: int) -> list[Mapping]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except PermissionError:
        raise ptrace_refusal(pid, "its memory maps") from None
    except OSError:
        raise TargetError(f"PID {pid} is not running") from None
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        path = parts[5] if len(parts) > 5 else ""
        out.append(Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16),
                           int(parts[4]), path))
    return out


def find_mapping(maps: list[Mapping], addr: int) -> Mapping | None:
    for m in maps:
        if m.start <= addr < m.end:
            return m
    return None


def file_offset_of(maps: list[Mapping], addr: int) -> tuple[str, int] | None:
    """(path, file offset) backing a runtime address, or None (anonymous/JIT)."""
    m = find_mapping(maps, addr)
    if m is None or not m.path.startswith("/"):
        return None
    return m.path, addr - m.start + m.offset


def mapped_libraries(pid: int) -> list[str]:
    """Paths of the executable files mapped in a process, in map order, unique."""
    seen: list[str] = []
    for m in read_maps(pid):
        if m.executable and m.path.startswith("/") and m.path not in seen:
            seen.append(m.path)
    return seen
