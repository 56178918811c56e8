"""lumos: live introspection of Linux and Go programs with BPF, in pure Python."""

__version__ = "0.1.0"
