"""When a tool stops: Ctrl-C, SIGTERM, -d expiry, or the traced command's exit.

The loop polls every 100 ms at most, so every stop condition is seen promptly.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

from lumos import filestamp
from lumos.errors import UsageError
from lumos.targets.launch import Launched

POLL_S = 0.1


class Runner:
    """Decides when a tool stops: Ctrl-C, SIGTERM or SIGHUP, -d expiry, or the traced
    command's exit."""

    def __init__(self, duration: float | None = None, launched: Launched | None = None,
                 pid: int | None = None, exec_watch=None, exe: str | None = None):
        if duration is not None and duration <= 0:
            raise UsageError("-d must be a positive number of seconds")
        self.deadline = time.monotonic() + duration if duration else None
        self.launched = launched
        self.pid = pid                    # -p: stop when it exits
        self.exec_watch = exec_watch      # probes.lifecycle.ExecWatch: stop when it execs
        self.exe, self._exe_watched = exe, exe is not None  # a binary target: _check_exe
        if exe is not None and filestamp.first_seen(exe) is None:
            filestamp.remember(exe)  # normally stamped already, when it was analysed
        self.stop_reason: str | None = None
        self.target_note: str | None = None   # "PID 12 exited", for the tool to print
        self._next_check = 0.0
        self._old: dict[int, object] = {}

    def __enter__(self) -> Runner:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        # SIGHUP (the terminal went away) ends a tool like SIGTERM: summary, detach
        self.stop_reason = "interrupted" if signum == signal.SIGINT else "terminated"

    @property
    def stopping(self) -> bool:
        if self.stop_reason is None:
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                self.stop_reason = "duration"
            elif self.launched is not None and self.launched.poll() is not None:
                self.stop_reason = "command exited"
            elif now >= self._next_check:  # the target's fate, every POLL_S at most
                self._next_check = now + POLL_S / 2
                self._check_target()
        return self.stop_reason is not None

    def _check_target(self) -> None:
        self._check_exe()
        if self.pid is not None and not process_alive(self.pid):
            self.stop_reason = "target exited"
            self.target_note = f"PID {self.pid} exited"
        elif self.exec_watch is not None and self.exec_watch.execs():
            self.stop_reason = "target exec'd"
            exe = _exe(self.exec_watch.tgid)
            if self.launched is not None:
                self.launched.run_on = True  # lumos stops watching; the command goes on
                self.target_note = (f"the command exec'd {exe or 'another program'}: tracing "
                                    f"stopped, the probes were in the old image; the command "
                                    f"runs on (trace the new program with -c or its path)")
                return
            self.target_note = (f"PID {self.pid} exec'd{' ' + exe if exe else ''}: the probes "
                                f"were in the old image (trace the new one with -p again, or "
                                f"give the binary path to follow every process running it)")

    def _check_exe(self) -> None:
        """A binary rebuilt and moved over the path has a new inode: the uprobes stay on
        the old one (processes still running it are traced, new ones are not): say so
        once. One written in place (same inode; possible only while nothing runs it,
        else ETXTBSY) would get breakpoints at offsets from the old content, which can
        split an instruction of the new one: detach at once (see lumos.filestamp)."""
        if not self._exe_watched or not os.path.exists(self.exe):  # mid-rename: later
            return
        how = filestamp.changed(self.exe)
        if how == "modified":
            self._exe_watched = False
            self.stop_reason = "binary modified"
            self.target_note = (f"{self.exe} was modified in place: lumos detached (its "
                                f"probes were at offsets in the old content; a process "
                                f"started from the new one could crash on them); run "
                                f"lumos again to trace the new file")
        elif how == "replaced":
            self._exe_watched = False
            print(f"lumos: {self.exe} was replaced on disk: the probes stay on the old file "
                  f"(processes already running it are still traced, ones started from the "
                  f"new file are not; restart lumos to trace them)", file=sys.stderr,
                  flush=True)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds` in short steps; False as soon as the tool should stop."""
        end = time.monotonic() + seconds
        while not self.stopping:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(POLL_S, left))
        return False

    def ticks(self, interval: float | None) -> Iterator[bool]:
        """Yield False at each interval's end and True once at the very end."""
        if interval is not None and interval <= 0:
            raise UsageError("-i must be a positive number of seconds")
        while True:
            if interval is None:
                while self.sleep(3600):
                    pass
                yield True
                return
            if self.sleep(interval):
                yield False
            else:
                yield True
                return

    def wait_timeout(self) -> float:
        """How long an event loop may block now (≤ 100 ms, less near the deadline)."""
        if self.deadline is None:
            return POLL_S
        return max(0.0, min(POLL_S, self.deadline - time.monotonic()))


def process_alive(pid: int) -> bool:
    """False once the process has exited (a zombie counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _exe(pid: int | None) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
