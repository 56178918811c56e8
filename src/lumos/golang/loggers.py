"""The Go loggers lumos knows: which function sees every call before its level check,
with which arguments, how its levels are numbered, and how to tell a filtered call.

    logger  function (probed)                    message  attributes       level
    slog    log/slog.(*Logger).log               msg      args ...any      level arg
    slog    log/slog.(*Logger).logAttrs          msg      attrs ...Attr    level arg
    zap     go.uber.org/zap.(*Logger).check      msg      -                lvl arg
    zap     go.uber.org/zap.(*SugaredLogger).log template fmtArgs, context lvl arg
    logrus  github.com/sirupsen/logrus.(*Logger).Log/Logf/Logln, (*Entry).Log/Logf/Logln
                                                 args     -                level arg
    log     log.(*Logger).output (Go 1.21+)      the closure's format and args
            log.(*Logger).Output                 s

Signatures are written with layout-equivalent types (`*int` for a pointer receiver,
`[]any` for any slice) so the ABI assignment needs no DWARF: it works on stripped
binaries. Verdicts: "check" = the jump after the level-check call (logsites.py);
"level_field" = the logger's own level, read through `level_chain` (offsets from the
receiver: logrus.Logger.Level is at +44 in logrus 1.x: Out io.Writer, Hooks map,
Formatter interface, ReportCaller bool, then Level uint32), filtered iff level > it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# common severity scale, for --level
SEVERITIES = ("trace", "debug", "info", "warn", "error", "panic", "fatal")


@dataclass(frozen=True)
class LoggerFunc:
    logger: str                       # slog | zap | logrus | log
    name: str                         # the probed function
    signature: str                    # layout-equivalent, for the ABI assignment
    msg: str = ""                     # argument holding the message ("" none)
    level: str = ""                   # argument holding the level ("" constant)
    level_const: int = 0              # the level when it is implied by the method
    level_size: int = 8
    elems: tuple[str, ...] = ()       # slice arguments with the attributes/arguments
    elem_kind: str = "iface"          # iface | attr (slog.Attr, 40 B)
    check_callee: str | None = None   # verdict: the call whose result is tested
    check_indirect: bool = False      # ... or the first indirect call
    check_result: str = "al"
    level_chain: tuple[int, ...] = ()  # verdict from the logger's level field
    message: str = "msg"              # how the message is made: msg | sprint | sprintf
                                      # | sprintln | template | closure (std log)
    closure: str = ""                 # std log: the appendOutput func argument
    discard: bool = False             # level_chain reads a "discard" flag, not a level


_SLOG_SIG = "(l *int, ctx interface{ Done() }, level int, msg string, args []any)"
_LOGRUS = "github.com/sirupsen/logrus"

CATALOGUE: tuple[LoggerFunc, ...] = (
    LoggerFunc("slog", "log/slog.(*Logger).log", "log/slog.(*Logger).log" + _SLOG_SIG,
               msg="msg", level="level", elems=("args",),
               check_callee="log/slog.(*Logger).Enabled"),
    LoggerFunc("slog", "log/slog.(*Logger).logAttrs",
               "log/slog.(*Logger).logAttrs" + _SLOG_SIG, msg="msg", level="level",
               elems=("args",), elem_kind="attr",
               check_callee="log/slog.(*Logger).Enabled"),
    # check() sees every level below DPanic (those skip the test) and the message;
    # the fields are only handed over later, to the enabled entry's Write
    LoggerFunc("zap", "go.uber.org/zap.(*Logger).check",
               "go.uber.org/zap.(*Logger).check(log *int, lvl int8, msg string)",
               msg="msg", level="lvl", level_size=1, check_indirect=True),
    LoggerFunc("zap", "go.uber.org/zap.(*SugaredLogger).log",
               "go.uber.org/zap.(*SugaredLogger).log(s *int, lvl int8, template string, "
               "fmtArgs []any, context []any)", msg="template", level="lvl", level_size=1,
               elems=("fmtArgs", "context"), check_indirect=True, message="template"),
    *(LoggerFunc("logrus", f"{_LOGRUS}.(*{recv}).{m}",
                 f"{_LOGRUS}.(*{recv}).{m}(r *int, level uint32, "
                 + ("format string, " if m == "Logf" else "") + "args []any)",
                 msg="format" if m == "Logf" else "", level="level", level_size=4,
                 elems=("args",), level_chain=(0, 44) if recv == "Entry" else (44,),
                 message={"Log": "sprint", "Logf": "sprintf", "Logln": "sprintln"}[m])
      for recv in ("Logger", "Entry") for m in ("Log", "Logf", "Logln")),
    # the standard library's log (Go 1.21+): Print*/Fatal*/Panic* hand output() a
    # closure over their arguments; output returns early when the writer is io.Discard
    # (Logger.isDiscard, an atomic.Bool at +36: outMu sync.Mutex, out io.Writer,
    # prefix atomic.Pointer, flag atomic.Int32, isDiscard)
    LoggerFunc("log", "log.(*Logger).output",
               "log.(*Logger).output(l *int, pc uintptr, calldepth int, appendOutput *int)",
               level_chain=(36,), discard=True, closure="appendOutput", message="closure"),
    LoggerFunc("log", "log.(*Logger).Output",
               "log.(*Logger).Output(l *int, calldepth int, s string)", msg="s",
               level_chain=(36,), discard=True),
)

# std log's closures: {F uintptr, format string, v []any} for the *f functions,
# {F, v []any} for the others, {F, s string} for Output; captured variables are laid
# out in the order the closure body uses them. Named log.Printf.func1 (Go 1.27), or
# after the function they were inlined into: main.calls.Printf.func4 (Go 1.21-1.23).
_CLOSURE = re.compile(r"\.(?:\(\*Logger\)\.)?(Print|Printf|Println|Fatal|Fatalf|Fatalln|"
                      r"Panic|Panicf|Panicln|Output)\.func\d+$")


def log_closure(name: str) -> str | None:
    """Which std log function a closure comes from ("Printf"), or None."""
    m = _CLOSURE.search(name)
    return m.group(1) if m else None

PACKAGES = {"slog": ("log/slog",), "zap": ("go.uber.org/zap",), "logrus": (_LOGRUS,),
            "log": ("log",)}


def closure_message(fn: str) -> str:
    """How std log makes the message of a call through this closure kind."""
    return "sprintf" if fn.endswith("f") else "sprintln" if fn.endswith("ln") else (
        "msg" if fn == "Output" else "sprint")


def level_name(logger: str, level: int) -> str:
    """The level as the logger itself prints it (slog's Level.String: DEBUG+1...)."""
    if logger == "slog":
        for base, name in ((8, "ERROR"), (4, "WARN"), (0, "INFO"), (-4, "DEBUG")):
            if level >= base or name == "DEBUG":
                return name if level == base else f"{name}{level - base:+d}"
    if logger == "zap":
        return {-1: "DEBUG", 0: "INFO", 1: "WARN", 2: "ERROR", 3: "DPANIC", 4: "PANIC",
                5: "FATAL"}.get(level, f"LEVEL({level})")
    if logger == "logrus":
        return {0: "PANIC", 1: "FATAL", 2: "ERROR", 3: "WARN", 4: "INFO", 5: "DEBUG",
                6: "TRACE"}.get(level, f"LEVEL({level})")
    return "PRINT"


def level_threshold(logger: str, severity: str) -> tuple[int, bool]:
    """(value, at_least): a call passes --level when level >= value (at_least) or
    level <= value (logrus counts down: Panic 0 ... Trace 6)."""
    i = SEVERITIES.index(severity)
    if logger == "slog":
        return (-8, -4, 0, 4, 8, 8, 8)[i], True
    if logger == "zap":
        return (-1, -1, 0, 1, 2, 3, 5)[i], True
    if logger == "logrus":
        return (6, 5, 4, 3, 2, 1, 1)[i], False
    return 0, True


def functions_for(logger: str) -> list[LoggerFunc]:
    return [f for f in CATALOGUE if logger in ("auto", f.logger)]
