"""Swap space and a memory-limited cgroup for the swap-in tests, made for real and undone.

The test VM has no swap. swap_space() tries, in order: a swap file on the test's own
filesystem (dd + mkswap + swapon), a zram device (compressed RAM), a loop device over a
file; it says in one line why each one it could not use failed. memory_cgroup() makes a
cgroup whose memory limit pushes a process's pages out to swap: cgroup v2 memory.max
where the memory controller is on the unified hierarchy, else v1 memory.limit_in_bytes
(this VM mounts the memory controller on v1).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest


def _run(*argv: str) -> str:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise OSError(f"{' '.join(argv)}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return r.stdout.strip()


@contextmanager
def _swap_file(directory: Path, mb: int):
    path = directory / "lumos-test.swap"
    _run("dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mb}", "status=none")
    path.chmod(0o600)
    try:
        _run("mkswap", str(path))
        _run("swapon", str(path))
        try:
            yield f"swap file {path}"
        finally:
            _run("swapoff", str(path))
    finally:
        path.unlink()


@contextmanager
def _zram(mb: int):
    dev = Path("/sys/class/zram-control/hot_add")
    if not dev.exists():
        raise OSError("no zram driver (/sys/class/zram-control)")
    num = int(dev.read_text())
    try:
        Path(f"/sys/block/zram{num}/disksize").write_text(f"{mb}M")
        _run("mkswap", f"/dev/zram{num}")
        _run("swapon", f"/dev/zram{num}")
        try:
            yield f"zram device /dev/zram{num}"
        finally:
            _run("swapoff", f"/dev/zram{num}")
    finally:
        Path("/sys/class/zram-control/hot_remove").write_text(str(num))


@contextmanager
def _loop(directory: Path, mb: int):
    backing = directory / "lumos-test.loop"
    _run("dd", "if=/dev/zero", f"of={backing}", "bs=1M", f"count={mb}", "status=none")
    try:
        dev = _run("losetup", "--find", "--show", str(backing))
        try:
            _run("mkswap", dev)
            _run("swapon", dev)
            try:
                yield f"loop device {dev} over {backing}"
            finally:
                _run("swapoff", dev)
        finally:
            _run("losetup", "-d", dev)
    finally:
        backing.unlink()


@contextmanager
def swap_space(directory: Path, mb: int = 256):
    """Some swap for the duration; fails the test with every reason when none works."""
    why = []
    for name, make in (("swap file", lambda: _swap_file(directory, mb)),
                       ("zram", lambda: _zram(mb)), ("loop device", lambda: _loop(directory, mb))):
        with ExitStack() as stack:
            try:
                where = stack.enter_context(make())
            except OSError as e:
                why.append(f"{name}: {e}")
                continue
            yield where + "".join(f" ({w})" for w in why)
            return
    pytest.fail("no swap space could be made: " + "; ".join(why), pytrace=False)


def _memory_hierarchy() -> tuple[str, Path]:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for m in mounts:
        sep = m.index("-")
        if m[sep + 1] == "cgroup2":
            root = Path(m[4])
            if "memory" in (root / "cgroup.controllers").read_text().split():
                return "v2", root
    for m in mounts:
        sep = m.index("-")
        if m[sep + 1] == "cgroup" and "memory" in m[sep + 3].split(","):
            return "v1", Path(m[4])
    pytest.fail("no memory cgroup controller mounted (v1 or v2)", pytrace=False)


@contextmanager
def memory_cgroup(limit_bytes: int):
    """A new cgroup with that memory limit; yields its cgroup.procs path."""
    version, root = _memory_hierarchy()
    cg = root / f"lumos-test-{uuid.uuid4().hex[:8]}"
    if version == "v2":
        control = root / "cgroup.subtree_control"
        if "memory" not in control.read_text().split():
            control.write_text("+memory")
    cg.mkdir()
    try:
        if version == "v2":
            (cg / "memory.max").write_text(str(limit_bytes))
        else:
            (cg / "memory.limit_in_bytes").write_text(str(limit_bytes))
        yield cg / "cgroup.procs"
    finally:
        for pid in (cg / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        for _ in range(100):
            try:
                cg.rmdir()
                break
            except OSError:
                import time
                time.sleep(0.05)
