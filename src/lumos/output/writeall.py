"""Writing all of a tool's output, whatever signal lands in the middle."""

from __future__ import annotations

import os

# bytes per write(): large writes into a file or tmpfs cost fewer syscalls; a pipe takes
# what it has room for and the rest is written again
WRITE_MAX = 1 << 20


def write_all(out, data: bytes | str) -> None:
    """Write data to out without losing any of it when a signal lands mid-write.

    Measured here (CPython 3.11): a large sys.stdout.write() to a full pipe that Ctrl-C
    interrupts after a partial write drops the rest of the string, silently (a reader
    that drains the pipe only at the end sees lines cut in two). os.write() reports a
    partial write and is simply called again for the rest.
    """
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):   # a StringIO (tests)
        out.write(data if isinstance(data, str) else data.decode())
        return
    out.flush()
    view = memoryview(data.encode() if isinstance(data, str) else data)
    while view:
        view = view[os.write(fd, view[:WRITE_MAX]):]
