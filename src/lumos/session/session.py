"""One run of a tool, in the order every tool follows (libbpf-tools' main, once):

    with Session(args) as s:                 # timing checked, target resolved, -c held
        ... plan and attach on s.stack ...   # everything kernel-side closes with the stack
        s.banner("Tracing 3 functions")      # '... in PID 12 (...)... Hit Ctrl-C to end.'
        s.start()                            # -c: the command execs now, probes in place
        for final in s.intervals():          # until Ctrl-C, SIGTERM/SIGHUP, -d, exit
            ...
    # the stack unwinds: links, programs, maps closed in reverse order

The Runner (stop conditions) is created by start(): signals are ours from then on.
Ctrl-C before that interrupts set-up with KeyboardInterrupt, which cli.py turns into
exit code 130 without a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack

from lumos.probes.lifecycle import ExecWatch
from lumos.session.args import validate_shared
from lumos.session.report import report_skipped
from lumos.session.runner import Runner
from lumos.targets.target import Target, resolve_target


class Session:
    def __init__(self, args: argparse.Namespace, need_patterns: bool = True,
                 is_kernel_pattern=lambda p: False, target: Target | None = None):
        validate_shared(args)
        self.args = args
        self.stack = ExitStack()
        self.target = target or resolve_target(args, need_patterns, is_kernel_pattern)
        self.runner: Runner | None = None
        self._early_signals: list[int] | None = None

    def __enter__(self) -> Session:
        self.stack.__enter__()
        if self.target.launched:
            self.stack.callback(self.target.launched.close)
        return self

    def __exit__(self, *exc) -> bool | None:
        try:
            return self.stack.__exit__(*exc)
        finally:
            self._report_end()

    def _report_end(self) -> None:
        """Say why the target ended tracing, and hand a -c command's failure on."""
        if self.runner is not None and self.runner.target_note:
            print(f"lumos: {self.runner.target_note}", file=sys.stderr, flush=True)
        launched = self.target.launched
        if launched is not None and launched.run_on:
            launched.wait_or_kill()  # it exec'd: its run is no longer lumos's to end
        if self.runner is not None and launched is not None \
                and launched.returncode not in (None, 0) and not launched.stopped_by_lumos:
            status = launched.returncode
            what = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            print(f"lumos: the command {what}", file=sys.stderr)
            # lumos exits as the command did (128 + signal, as shells report it)
            self.args._command_status = status if status > 0 else 128 - status

    def enter(self, cm):
        """Put a context manager (map, link, ring buffer) on the session's stack."""
        return self.stack.enter_context(cm)

    def banner(self, what: str, notes=(), skipped=()) -> None:
        """'Tracing <what> in <target>... Hit Ctrl-C to end.' on stderr, then one line
        per skipped site group and per note (never dropped silently)."""
        where = f" in {self.target.label}" if self.target.exe or self.target.pid else ""
        self._hold_signals()
        print(f"Tracing {what}{where}... Hit Ctrl-C to end.", file=sys.stderr, flush=True)
        report_skipped(list(skipped))
        for note in sorted(set(notes)):
            # golang/sigcheck.py's warnings come as "warning: ..."
            print(f"lumos: {note}" if note.startswith("warning: ") else f"lumos: note: {note}",
                  file=sys.stderr)

    def start(self) -> Runner:
        """Let a -c command exec (probes are attached) and start watching for the end:
        the command's exit, or a -p process's exit or exec."""
        launched = self.target.launched
        pid = self.target.pid
        # watching before a -c command execs: a quick one may exec again at once
        watch = ExecWatch(pid).attach(self.stack) if pid is not None else None
        if launched:
            launched.start()
            watch.mark()
        exe = self.target.exe if pid is None else None  # a binary target
        self.runner = Runner(getattr(self.args, "duration", None), launched,
                             pid if launched is None else None, watch, exe)
        self.stack.enter_context(self.runner)
        if self._early_signals:  # Ctrl-C right after the banner: a stop like any other
            self.runner._on_signal(self._early_signals[0], None)
        return self.runner

    def _hold_signals(self) -> None:
        """From the banner on, Ctrl-C/SIGTERM/SIGHUP are a request to stop, kept until the
        runner takes over, never a KeyboardInterrupt in the middle of starting."""
        if self._early_signals is not None:
            return
        self._early_signals = []
        originals = {sig: signal.signal(sig, lambda signum, _: self._early_signals.append(signum))
                     for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        self.stack.callback(lambda: [signal.signal(k, v) for k, v in originals.items()])

    def intervals(self) -> Iterator[bool]:
        """Yield at each -i interval (False) and once at the end (True)."""
        runner = self.runner or self.start()
        yield from runner.ticks(getattr(self.args, "interval", None))

    def report_intervals(self, read, clear, report) -> None:
        """The loop of every aggregating tool: at each -i interval read the kernel's
        maps, clear them for the next interval, report; at the end read and report."""
        interval = getattr(self.args, "interval", None)
        for final in self.intervals():
            data = read()
            if interval and not final:
                clear()
            report(data)
