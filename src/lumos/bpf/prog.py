"""Loading BPF programs: a ProgramSpec (pure data) becomes a Program (owned fd).

The first load asks for no verifier log (cheap); only a rejected program is loaded
again with the log on, so the error can show the verifier's last lines and the
failing instructions of our own listing. The whole log stays on VerifierError.log.
"""

from __future__ import annotations

import ctypes
import errno
import re
from dataclasses import dataclass

from lumos import caps
from lumos.bpf import sys as bsys
from lumos.bpf.asm import Instruction, encode, format_insns
from lumos.bpf.sys import FD
from lumos.errors import BPFError, VerifierError

LOG_LEVEL_VERBOSE = 1
LOG_START_BYTES = 1 << 20
LOG_MAX_BYTES = 1 << 28  # the kernel's own cap (UINT_MAX >> 2 in recent kernels)


@dataclass(frozen=True)
class ProgramSpec:
    name: str
    prog_type: int
    insns: tuple[Instruction, ...]
    license: str = "GPL"
    expected_attach_type: int = 0
    attach_btf_id: int = 0  # fentry/fexit: the vmlinux BTF id of the traced function
    prog_flags: int = 0     # BPF_F_SLEEPABLE for syscall programs
    about: str = ""         # what the emitter says of its memory: maps, stack slots, record

    def listing(self, mark: set[int] | None = None) -> str:
        return format_insns(list(self.insns), mark)

    def explain(self) -> str:
        """The whole story of a program, as `--dump-prog` prints it: name, type, size,
        the emitter's memory declarations, then the commented listing."""
        slots = sum(i.slots for i in self.insns)
        head = f"program {self.name}: type {self.prog_type}, {slots} instructions"
        return "\n".join(x for x in (head, self.about, self.listing()) if x)


_load_observers: list = []


def observe_loads(fn) -> None:
    """Call fn(spec) for each program loaded from now on (cli's --dump-prog)."""
    _load_observers.append(fn)


class Program:
    """A loaded program. Close it (or use `with`)."""

    def __init__(self, spec: ProgramSpec, fd: FD):
        self.spec = spec
        self.name = spec.name
        self._fd = fd

    @property
    def fd(self) -> int:
        return self._fd.fd

    def close(self) -> None:
        self._fd.close()

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> bsys.BpfProgInfo:
        return bsys.obj_get_info(self.fd, bsys.BpfProgInfo())

    def test_run(self, ctx: bytes = b"", data: bytes = b"", repeat: int = 1) -> int:
        """Run with BPF_PROG_TEST_RUN; returns R0. Not every program type supports it."""
        cbuf = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
        dbuf = ctypes.create_string_buffer(data, len(data)) if data else None
        attr = bsys.ProgTestRunAttr(prog_fd=self.fd, repeat=repeat,
                                    ctx_in=bsys._ptr(cbuf), ctx_size_in=len(ctx),
                                    data_in=bsys._ptr(dbuf), data_size_in=len(data))
        try:
            bsys.bpf(bsys.BPF_PROG_TEST_RUN, attr)
        except OSError as e:
            raise BPFError(f"test run {self.name}: {e.strerror}", e.errno) from None
        return attr.retval


def _load(spec: ProgramSpec, code: bytes, log_level: int, log_size: int):
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(spec.license.encode())
    log = ctypes.create_string_buffer(log_size) if log_level else None
    attr = bsys.ProgLoadAttr(
        prog_type=spec.prog_type, insn_cnt=len(code) // 8, insns=bsys._ptr(insns),
        license=bsys._ptr(lic), log_level=log_level, log_size=log_size if log_level else 0,
        log_buf=bsys._ptr(log), expected_attach_type=spec.expected_attach_type,
        prog_name=_prog_name(spec.name), attach_btf_id=spec.attach_btf_id,
        prog_flags=spec.prog_flags)
    try:
        return bsys.bpf(bsys.BPF_PROG_LOAD, attr), None
    except OSError as e:
        text = log.value.decode(errors="replace") if log is not None else ""
        return None, (e, text)


def _prog_name(name: str) -> bytes:
    # The kernel accepts only [A-Za-z0-9_.] in object names.
    return re.sub(r"[^A-Za-z0-9_.]", "_", name).encode()[: bsys.BPF_OBJ_NAME_LEN - 1]


def load_program(spec: ProgramSpec) -> Program:
    code = encode(list(spec.insns))
    for fn in _load_observers:
        fn(spec)
    fd, failure = _load(spec, code, 0, 0)
    if fd is not None:
        return Program(spec, FD(fd))
    err, _ = failure
    if err.errno == errno.EPERM and (gone := caps.missing("CAP_BPF", "CAP_PERFMON")):
        raise caps.refusal(f"load program {spec.name}", gone)
    # Reload with the verifier log on, growing the buffer until the log fits.
    size = LOG_START_BYTES
    while True:
        fd, failure = _load(spec, code, LOG_LEVEL_VERBOSE, size)
        if fd is not None:  # passes with logging on: keep it
            return Program(spec, FD(fd))
        err, log = failure
        if err.errno != errno.ENOSPC or size >= LOG_MAX_BYTES:
            break
        size *= 4
    raise verifier_error(spec, err, log)


_INSN_LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\)")
# Lines that never explain a rejection: statistics and register-state dumps.
_NOISE = re.compile(r"^(processed \d+ insns|verification time|stack depth|mark_precise"
                    r"|(cur|old) state:|from \d+ to \d+:|\d+: R\d|R\d+=|\d+: \()")


def verifier_error(spec: ProgramSpec, err: OSError, log: str) -> VerifierError:
    """A one-paragraph summary: the verifier's last meaningful lines and the failing insn."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not _NOISE.match(ln)]
    tail = meaningful[-2:] if meaningful else []
    failing = None
    for ln in reversed(lines):
        m = _INSN_LINE.match(ln)
        if m:
            failing = int(m.group(1))
            break
    listing = spec.listing({failing} if failing is not None else None)
    msg = f"load program {spec.name!r}: {err.strerror}"
    if tail:
        msg += ": " + " / ".join(t.strip() for t in tail)
    if not lines and err.errno == errno.EPERM:
        msg += " (refused before verification, as root: kernel lockdown or a BPF LSM policy)"
    if failing is not None:
        msg += f" (at instruction {failing}: {_listing_line(listing, failing)})"
    omitted = max(0, len(lines) - len(tail))
    if omitted:
        msg += f" ({omitted} more log lines; --debug shows the listing and the whole log)"
    return VerifierError(msg, err.errno, log, listing)


def _listing_line(listing: str, slot: int) -> str:
    for ln in listing.splitlines():
        if ln.startswith(">>"):
            return ln[2:].split(":", 1)[1].strip()
    return f"#{slot}"
