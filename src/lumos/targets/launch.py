"""A command started by lumos (-c CMD): forked, held before exec until probes are in,
and held once more at its first instruction, so that lumos reads its memory map before
it runs (a PIE's load address; a short command may be gone before an event is decoded).

The second hold is ptrace's exec stop (PTRACE_TRACEME: the kernel stops a traced child
with SIGTRAP right after a successful exec); lumos reads /proc/PID/maps and detaches at
once. Nothing of the child is written.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal

from lumos.binary.procmaps import read_maps
from lumos.errors import LumosError, TargetError

PTRACE_TRACEME, PTRACE_DETACH = 0, 17
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class Launched:
    """A command forked and held before exec until start(): probes go in first.

    exec keeps the PID, so probes filtered by this PID see the command from its first
    instruction. Its stdin/stdout/stderr are ours: its output passes through.
    """

    def __init__(self, argv: list[str]):
        path = shutil.which(argv[0])
        if path is None:
            if os.path.exists(argv[0]) or (os.sep not in argv[0] and _anywhere(argv[0])):
                raise TargetError(f"{argv[0]}: not executable (chmod +x it, or run it through "
                                  f"its interpreter)")
            raise TargetError(f"command not found: {argv[0]}")
        self.argv = argv
        self.exe = os.path.realpath(path)
        go_r, self._go_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: wait for the go-ahead, then exec
            try:
                os.close(self._go_w)
                os.close(err_r)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                if os.read(go_r, 1) != b"x":
                    os._exit(126)
                _libc.ptrace(PTRACE_TRACEME, 0, None, None)  # stop at the exec (see above)
                os.execv(self.exe, argv)
            except OSError as e:
                os.write(err_w, (e.strerror or "exec failed").encode())
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self._err_r = err_r
        self.pid = pid
        self.returncode: int | None = None
        self.stopped_by_lumos = False
        self.run_on = False  # it exec'd another program: close() leaves it running
        self.maps = []   # /proc/PID/maps at the first instruction (binary.procmaps)

    def start(self) -> None:
        os.write(self._go_w, b"x")
        os.close(self._go_w)
        self._go_w = -1
        msg = os.read(self._err_r, 4096)  # EOF when exec succeeded (CLOEXEC)
        os.close(self._err_r)
        if msg:
            self.wait()
            raise TargetError(f"cannot run {self.argv[0]}: {msg.decode()}")
        _, status = os.waitpid(self.pid, 0)
        if not os.WIFSTOPPED(status):  # gone already (killed by a signal in between)
            self.returncode = os.waitstatus_to_exitcode(status)
            return
        try:
            self.maps = read_maps(self.pid)
        except LumosError:
            self.maps = []
        _libc.ptrace(PTRACE_DETACH, self.pid, None, None)  # and it runs

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait_or_kill(self) -> int:
        """Wait for the command's end; Ctrl-C (which it gets too) kills it if it stays."""
        try:
            return self.wait()
        except KeyboardInterrupt:
            self.run_on = False
            self.close()
            raise

    def close(self) -> None:
        """Kill the command if it has not run or is still running (error paths)."""
        if self._go_w >= 0:
            os.close(self._go_w)  # child reads EOF and exits 126
            self._go_w = -1
        if self.poll() is None and not self.run_on:
            self.stopped_by_lumos = True  # its end is lumos's doing, not its own failure
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


def _anywhere(name: str) -> bool:
    """name is a file in some PATH directory (shutil.which skips non-executables)."""
    return any(os.path.isfile(os.path.join(d, name))
               for d in os.environ.get("PATH", "").split(os.pathsep) if d)
