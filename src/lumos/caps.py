"""The capabilities lumos has, and the one-line refusal that names the one it lacks.

Measured on Linux 6.18 (tests/reliability/test_privileges.py runs every case as a
non-root uid with ambient capabilities):
- CAP_BPF + CAP_PERFMON: load programs, create maps, uprobe_multi links, raw
  tracepoints, perf sampling. Enough for every uprobe tool on one's own processes.
- CAP_SYS_ADMIN: a uprobe *perf event* (the uprobe PMU refuses CAP_PERFMON alone with
  EACCES; lumos uses it only without uprobe_multi), mounting tracefs, fentry.
- CAP_SYS_PTRACE: another user's (or a more privileged) process: /proc/PID/exe, maps
  and mem need ptrace access.
- CAP_DAC_READ_SEARCH: tracefs is mode 0700 root, so a non-root uid needs it to read
  tracepoint ids and formats.
CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (bpf_capable, perfmon_capable).
"""

from __future__ import annotations

from lumos.errors import PrivilegeError

CAP_BITS = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21,
            "CAP_PERFMON": 38, "CAP_BPF": 39}

# what each capability gives lumos, for `lumos doctor` and the refusals
NEEDED_FOR = {
    "CAP_BPF": "loading BPF programs and maps",
    "CAP_PERFMON": "attaching probes, perf sampling",
    "CAP_SYS_ADMIN": "mounting tracefs, uprobe perf events (kernels without uprobe_multi)",
    "CAP_SYS_PTRACE": "other users' processes (/proc/PID/maps, exe, mem), -c",
    "CAP_DAC_READ_SEARCH": "reading tracefs (mode 0700) as a non-root user",
}


def effective_mask() -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))


def has(cap: str) -> bool:
    mask = effective_mask()
    if mask >> CAP_BITS[cap] & 1:
        return True
    return cap in ("CAP_BPF", "CAP_PERFMON") and bool(mask >> CAP_BITS["CAP_SYS_ADMIN"] & 1)


def missing(*caps: str) -> list[str]:
    return [c for c in caps if not has(c)]


def refusal(what: str, caps: list[str]) -> PrivilegeError:
    """`what: missing CAP_X (run lumos as root, or grant CAP_X)`, one line."""
    names = ", ".join(caps)
    return PrivilegeError(f"{what}: missing {names} (run lumos as root, e.g. with sudo, "
                          f"or grant {names})")


def require(what: str, *caps: str) -> None:
    if gone := missing(*caps):
        raise refusal(what, gone)
