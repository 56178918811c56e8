"""Command line: `lumos TOOL ...`. Argument parsing only; each tool lives in lumos.tools.

Each tool module provides HELP (one line), EXAMPLES (text), add_arguments(parser) and
run(args) -> exit code. This is the one place a LumosError becomes a line on stderr
and exit code 2 (`--debug` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lumos.errors import LumosError
from lumos.session.args import validate_shared

# name -> module; modules are imported only when their tool runs (fast --help).
TOOLS = {
    "doctor": "lumos.tools.doctor",
    "funccount": "lumos.tools.funccount",
    "funcs": "lumos.tools.funcs",
    "trace": "lumos.tools.trace",
    "latency": "lumos.tools.latency",
    "flow": "lumos.tools.flow",
    "goroutines": "lumos.tools.goroutines",
    "http": "lumos.tools.http",
    "sql": "lumos.tools.sql",
    "usdt": "lumos.tools.usdt",
    "uflow": "lumos.tools.uflow",
    "ucalls": "lumos.tools.ucalls",
    "gethostlatency": "lumos.tools.gethostlatency",
    "bashreadline": "lumos.tools.bashreadline",
    "stacks": "lumos.tools.stacks",
    "profile": "lumos.tools.profile",
    "allocs": "lumos.tools.allocs",
    "execsnoop": "lumos.tools.execsnoop",
    "opensnoop": "lumos.tools.opensnoop",
    "runqlat": "lumos.tools.runqlat",
    "swapin": "lumos.tools.swapin",
    "faults": "lumos.tools.faults",
    "list": "lumos.tools.list",
    "logs": "lumos.tools.logs",
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (its default prints usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, import just that tool's module (start-up time matters)."""
    parser = _Parser(prog="lumos", description="Live introspection of Linux and Go "
                     "programs with BPF.", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and BPF program listings on errors")
    sub = parser.add_subparsers(dest="tool", metavar="TOOL", parser_class=_Parser)
    for name, modname in TOOLS.items():
        if only is not None and name != only:
            sub.add_parser(name, add_help=False)
            continue
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP,
                           epilog="examples:\n" + mod.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and BPF program listings on errors")
        p.add_argument("--dump-prog", action="store_true", default=argparse.SUPPRESS,
                       help="print each BPF program loaded, with comments saying where each "
                            "instruction and constant comes from, its maps and records")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    tool = "lumos"
    try:
        chosen = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(chosen if chosen in TOOLS else None)
        args = parser.parse_args(argv)
        if not args.tool:
            parser.print_help()
            return 2
        tool = f"lumos {args.tool}"
        validate_shared(args)
        if getattr(args, "dump_prog", False):
            from lumos.bpf.prog import observe_loads
            observe_loads(lambda spec: spec.name == "lumos_probe" or print(  # not features
                spec.explain() + "\n", file=sys.stderr, flush=True))
        return args._run(args) or getattr(args, "_command_status", 0)
    except LumosError as e:
        if debug:
            for extra in ("listing", "log"):  # VerifierError: the program and the whole log
                if getattr(e, extra, ""):
                    print(f"--- {extra} ---\n{getattr(e, extra)}", file=sys.stderr)
            raise
        print(f"{tool}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C during set-up (later it is a stop condition)
        return 130
    except BrokenPipeError:  # stdout closed early (| head): nothing more to say
        _silence_stdout()
        return 0
    except Exception as e:
        if debug:
            raise
        print(f"{tool}: internal error (a lumos bug, please report it): "
              f"{type(e).__name__}: {e} (--debug shows the traceback)", file=sys.stderr)
        return 70  # EX_SOFTWARE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
