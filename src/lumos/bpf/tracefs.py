"""tracefs, read-only: tracepoint ids and field layouts. Mounted on demand.

lumos never writes uprobe_events/kprobe_events: probes are perf events and BPF links,
so nothing can be left behind in tracefs when lumos is killed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from dataclasses import dataclass

from lumos import caps
from lumos.errors import NotSupportedError, TargetError

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MOUNT_HINT = "mount -t tracefs nodev /sys/kernel/tracing"


def _is_mounted(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "events"))


def _tracefs_mounts() -> set[str]:
    try:
        with open("/proc/self/mounts") as f:
            return {ln.split()[1] for ln in f if ln.split()[2:3] == ["tracefs"]}
    except OSError:
        return set()


def tracefs_root(mount: bool = True) -> str:
    """The tracefs directory, mounting it at /sys/kernel/tracing when nothing is mounted."""
    for d in TRACEFS_DIRS:
        if _is_mounted(d):
            return d
    for d in TRACEFS_DIRS:
        if d in _tracefs_mounts():  # there, but mode 0700 root
            caps.require(f"tracefs at {d} is readable only by root", "CAP_DAC_READ_SEARCH")
    if mount:
        libc = ctypes.CDLL(None, use_errno=True)
        ret = libc.mount(b"nodev", TRACEFS_DIRS[0].encode(), b"tracefs", 0, None)
        if ret == 0 and _is_mounted(TRACEFS_DIRS[0]):
            return TRACEFS_DIRS[0]
        err = ctypes.get_errno()
        if err == errno.EPERM and not caps.has("CAP_SYS_ADMIN"):
            raise caps.refusal(f"tracefs is not mounted (mount it once as root: {MOUNT_HINT}); "
                               f"mounting it", ["CAP_SYS_ADMIN"])
        raise NotSupportedError("tracefs", "4.1", f"not mounted and mounting failed: "
                                f"{os.strerror(err)} (try: {MOUNT_HINT})")
    raise NotSupportedError("tracefs", "4.1", f"not mounted (try: {MOUNT_HINT})")


def _event_dir(category: str, name: str) -> str:
    if not re.fullmatch(r"[\w.-]+", category) or not re.fullmatch(r"[\w.-]+", name):
        raise TargetError(f"tracepoint {category}:{name}: not a valid name")
    return os.path.join(tracefs_root(), "events", category, name)


def tracepoint_id(category: str, name: str) -> int:
    path = os.path.join(_event_dir(category, name), "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise TargetError(f"tracepoint {category}:{name} does not exist "
                          f"(list them: lumos tplist)") from None


@dataclass(frozen=True)
class TracepointField:
    name: str
    c_type: str
    offset: int
    size: int
    signed: bool


def tracepoint_fields(category: str, name: str) -> dict[str, TracepointField]:
    """The fields of a tracepoint's context record, from its `format` file."""
    path = os.path.join(_event_dir(category, name), "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise TargetError(f"tracepoint {category}:{name} does not exist") from None
    fields = {}
    pat = re.compile(r"field:(.+?);\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);")
    for m in pat.finditer(text):
        decl = m.group(1).strip()
        fname = re.sub(r"\[.*\]$", "", decl.split()[-1])
        ctype = decl[: decl.rfind(fname)].strip()
        fields[fname] = TracepointField(fname, ctype, int(m.group(2)), int(m.group(3)),
                                        m.group(4) == "1")
    return fields


def require_tracepoint(category: str, name: str,
                       fields: tuple[str, ...] = ()) -> dict[str, TracepointField]:
    """The named fields of a tracepoint that must exist here; a missing tracepoint or
    field is a NotSupportedError that names it (kernel tools cannot run without it)."""
    path = os.path.join(_event_dir(category, name), "format")
    if not os.path.exists(path):
        raise NotSupportedError(f"tracepoint {category}:{name}", "",
                                f"no {os.path.dirname(path)}")
    have = tracepoint_fields(category, name)
    missing = [f for f in fields if f not in have]
    if missing:
        raise NotSupportedError(f"tracepoint {category}:{name}", "",
                                f"its record has no field {', '.join(missing)} (see {path})")
    return {f: have[f] for f in fields}


def has_tracepoint(category: str, name: str) -> bool:
    return os.path.exists(os.path.join(_event_dir(category, name), "format"))


def list_tracepoints(pattern: str = "*") -> list[str]:
    import fnmatch
    root = os.path.join(tracefs_root(), "events")
    out = []
    for cat in sorted(os.listdir(root)):
        cdir = os.path.join(root, cat)
        if not os.path.isdir(cdir):
            continue
        for ev in sorted(os.listdir(cdir)):
            full = f"{cat}:{ev}"
            if os.path.isdir(os.path.join(cdir, ev)) and fnmatch.fnmatchcase(full, pattern):
                out.append(full)
    return out


def probe_events_left(prefix: str = "") -> list[str]:
    """Lines of uprobe_events (tests check lumos leaves nothing behind)."""
    try:
        with open(os.path.join(tracefs_root(), "uprobe_events")) as f:
            return [ln for ln in f.read().splitlines() if prefix in ln]
    except FileNotFoundError:
        return []
