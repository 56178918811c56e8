"""The lumos error hierarchy: every error a user can cause is a LumosError.

cli.py is the only place that turns one into a line on stderr and exit code 2.
Messages say what went wrong and, in parentheses, what to do about it.
"""


class LumosError(Exception):
    """Base of every error lumos raises on purpose."""


class UsageError(LumosError):
    """Bad arguments or combinations of arguments."""


class TargetError(LumosError):
    """The thing to trace is missing: no such file, PID not running, nothing matched."""


class PrivilegeError(LumosError):
    """lumos needs root (CAP_BPF + CAP_PERFMON + CAP_SYS_ADMIN) for what was asked."""


class NotSupportedError(LumosError):
    """The running kernel lacks a feature; names it and the kernel that introduced it."""

    def __init__(self, feature: str, min_kernel: str = "", detail: str = ""):
        self.feature = feature
        self.min_kernel = min_kernel
        self.detail = detail
        msg = f"{feature} is not supported by this kernel"
        if min_kernel:
            msg += f" (needs Linux >= {min_kernel})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class BPFError(LumosError):
    """A bpf() or perf_event_open() call failed; carries errno."""

    def __init__(self, message: str, errno: int = 0):
        self.errno = errno
        super().__init__(message)


class VerifierError(BPFError):
    """The kernel verifier rejected a program; the full log stays on .log."""

    def __init__(self, message: str, errno: int, log: str, listing: str = ""):
        self.log = log
        self.listing = listing
        super().__init__(message, errno)


class AttachError(BPFError):
    """A program could not be attached to its event."""


class AsmError(LumosError):
    """A BPF instruction sequence is malformed (unknown label, bad operand)."""


class BinaryFormatError(LumosError):
    """A file is not the ELF (or other format) it should be; names the offset."""

    def __init__(self, message: str, offset: int | None = None):
        self.offset = offset
        if offset is not None:
            message = f"{message} (at offset {offset:#x})"
        super().__init__(message)


class DwarfFormatError(BinaryFormatError):
    """The DWARF sections are damaged: names the offset in the section."""


class GoBinaryError(LumosError):
    """A Go-specific feature was asked of a binary that cannot provide it."""


class GoFormatError(BinaryFormatError, GoBinaryError):
    """A Go table (pclntab, build info, moduledata) is damaged: both a format error
    (the file is bad) and a Go one (what lumos needs from it cannot be had)."""
