"""Moved to lumos.bpf.frame (every Asm carries one as `a.frame`); kept while branches
that import it from here are merged."""

from lumos.bpf.frame import STACK_BYTES, Frame, Slot  # noqa: F401
