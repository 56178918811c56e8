"""Bad input over every tool: one clear line on stderr, exit code 2, no traceback, nothing
left attached. Each row is something a user typed (or could type) and what lumos must
answer. A lumos bug, by contrast, says so (exit 70) and is a failure here."""

from __future__ import annotations

import os

import pytest
from conftest import run_lumos
from support.programs import build_c

GOSERVER_TOOLS = ["trace", "latency", "flow", "funccount", "stacks"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, goserver):
    d = tmp_path_factory.mktemp("bad")
    (d / "text").write_text("not a program\n")
    (d / "noexec").write_bytes(b"\x7fELF" + bytes(60))
    exe = os.readlink(f"/proc/{goserver[0].pid}/exe")
    with open(exe, "rb") as f:
        (d / "truncated").write_bytes(f.read(300_000))
    return {"dir": str(d), "text": str(d / "text"), "noexec": str(d / "noexec"),
            "truncated": str(d / "truncated"), "exe": exe, "pid": str(goserver[0].pid),
            "c": build_c("calls")}


def _thread_of(pid: str) -> str:
    return sorted(os.listdir(f"/proc/{pid}/task"), key=int)[-1]


CASES = [
    # (tool and arguments, with {exe} {pid} {text} ... filled in, what stderr must say)
    (["trace", "/nonexistent/bin", "main.*"], "no such file"),
    (["trace", "{text}", "main.*"], "not an ELF file"),
    (["trace", "{truncated}", "main.*"], "{truncated}"),
    (["latency", "{truncated}", "main.*"], "{truncated}"),
    (["funcs", "{truncated}"], "{truncated}"),
    (["trace", "{exe}", "main.nosuch"], "matches no function"),
    (["trace", "{exe}", "net/url.ishex"], "inlined everywhere"),
    (["trace", "-p", "999999", "main.*"], "PID 999999 is not running"),
    (["trace", "-p", "{thread}", "main.*"], "is a thread of PID"),
    (["trace", "-p", "{pid}", "-c", "true", "main.*"], "-p and -c cannot be combined"),
    (["trace", "-c", "", "main.*"], "-c needs a command"),
    (["trace", "-c", "{text}", "main.*"], "not executable"),
    (["trace", "-c", "no-such-command-here", "main.*"], "command not found"),
    (["trace", "-p", "{pid}", "t:syscalls:sys_enter_openat"], "this tool probes user functions"),
    (["trace", "-p", "{pid}", "main.*", "--strlen", "100000000"], "--strlen must be between"),
    (["flow", "-p", "{pid}", "main.*", "--strlen", "0"], "--strlen must be between"),
    (["flow", "-p", "{pid}", "main.*", "--strlen", "-3"], "--strlen must be between"),
    (["trace", "-p", "{pid}", "main.*", "-d", "nan"], "-d must be a positive"),
    (["trace", "-p", "{pid}", "main.*", "-d", "-1"], "-d must be a positive"),
    (["latency", "-p", "{pid}", "main.*", "-i", "0"], "-i must be a positive"),
    (["latency", "-p", "{pid}", "main.*", "--max-inflight", "0"], "--max-inflight must be"),
    (["latency", "-p", "{pid}", "main.*", "--max-inflight", "-5"], "--max-inflight must be"),
    (["latency", "-p", "{pid}", "main.*", "--max-inflight", "1000000000"],
     "--max-inflight must be"),
    (["latency", "-p", "{pid}", "main.*", "--max-inflight", "1e9"], "invalid int value"),
    (["trace", "-p", "{pid}", "main.*", "--ring-mb", "3"], "--ring-mb must be a power of two"),
    (["trace", "-p", "{pid}", "main.prepareAnswer", "--filter", "year =="], "unexpected end"),
    (["trace", "-p", "{pid}", "main.prepareAnswer", "--filter", "nosuch == 1"],
     "no traced function has argument"),
    (["trace", "-p", "{pid}", "main.prepareAnswer", "--filter", 'year == "x"'],
     "not a string"),
    (["trace", "-p", "{pid}", "main.prepareAnswer(a string, b string, c string)"],
     "the signature gives argument words"),
    (["goroutines", "-p", "{pid}", "main.*"], "takes no patterns"),
    (["funccount", "-p", "{pid}", "k:vfs_read"], "kprobes is not supported"),
    (["funccount", "-p", "{pid}", "t:nosuchcategory:*"], "matches nothing"),
    (["funcs", "{exe}", "main.nosuch"], "no function matches"),
    (["funcs", "{c}", "nosuch"], "no function matches"),
    (["funcs"], "give a TARGET binary or -p PID"),
    (["latency", "-p", "{pid}", "main.prepareAnswer", "--by", "nosuch"],
     "no matching function has that argument"),
    (["latency", "-p", "{pid}", "main.prepareAnswer", "--unit", "s"], "invalid choice"),
    (["nosuchtool"], "invalid choice"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(files, argv, message):
    fill = {**files, "thread": _thread_of(files["pid"])}
    argv = [a.format(**fill) for a in argv]
    r = run_lumos(*argv, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert message.format(**fill) in lines[0], lines[0]



# --- every numeric option of every tool, absurd values -------------------------------

# what each tool needs besides the option to get past its own arguments
BASE_ARGS = {
    "funccount": ["-p", "{pid}", "main.*"], "funcs": ["{exe}"], "trace": ["-p", "{pid}", "main.*"],
    "latency": ["-p", "{pid}", "main.prepareAnswer"], "flow": ["-p", "{pid}", "main.*"],
    "goroutines": ["-p", "{pid}"], "http": ["-p", "{pid}"], "sql": ["-p", "{pid}"],
    "usdt": ["-p", "{pid}"], "uflow": ["{pid}"], "ucalls": ["{pid}"],
    "gethostlatency": ["-p", "{pid}"], "bashreadline": [],
    "stacks": ["-p", "{pid}", "main.prepareAnswer"], "profile": ["-p", "{pid}"],
    "allocs": ["-p", "{pid}"], "execsnoop": [], "opensnoop": [], "runqlat": [], "swapin": [],
    "faults": [], "logs": ["-p", "{pid}"], "doctor": [], "list": [],
}
# values that mean something (documented in --help), so they are not bad input
MEANINGFUL = {("http", "--slow", "0"), ("sql", "--slow", "0"), ("logs", "--rate", "0"),
              ("execsnoop", "--uid", "0"), ("opensnoop", "--uid", "0"),
              ("execsnoop", "--ppid", "0"), ("trace", "--max-elems", "0")}  # 0: len and cap
HUGE_OK = {"--top", "--rate"}  # an upper limit no one reaches is still a limit


def _numeric_options(tool: str) -> list[tuple[list[str], str]]:
    import argparse

    from lumos.cli import build_parser
    sub = next(a for a in build_parser(tool)._actions
               if isinstance(a, argparse._SubParsersAction))
    out = []
    for a in sub.choices[tool]._actions:
        kind = getattr(a.type, "__name__", "")
        if kind not in ("int", "float", "parse_uid") or not a.option_strings:
            continue
        flag = a.option_strings[-1]
        huge = "1e30" if kind == "float" else "100000000000"
        for v in ("-1", "0", "nan", "inf", "1e9999", "x", huge):
            if (tool, flag, v) in MEANINGFUL or (v == huge and flag in HUGE_OK):
                continue
            out.append((a.option_strings, f"{flag}={v}"))
    return out


def test_every_tool_is_in_the_table():
    from lumos.cli import TOOLS
    assert set(TOOLS) == set(BASE_ARGS)


def run_many(argvs: list[list[str]], timeout: float = 600) -> list[dict]:
    """Each argv through lumos's real entry point, one fork each (support/forkrun.py)."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).parent.parent / "support" / "forkrun.py"
    r = subprocess.run([sys.executable, str(script)], input=json.dumps(argvs),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def one_clear_line(r: dict, names: list[str]) -> bool:
    lines = [x for x in r["stderr"].splitlines() if x.strip()]
    return (r["rc"] == 2 and len(lines) == 1 and "Traceback" not in r["stderr"]
            and any(n in lines[0] for n in names))


def test_absurd_numbers_are_refused_before_anything_starts(files):
    """Every numeric option of every tool at -1, 0, nan, inf, overflow, text and huge:
    refused in one line naming the option, exit 2 (a value accepted would run for
    -d 1 and exit 0, and this fails)."""
    argvs, names = [], []
    for tool in sorted(BASE_ARGS):
        base = [a.format(**files) for a in BASE_ARGS[tool]]
        has_d = tool not in ("funcs", "usdt", "doctor", "list")
        for flags, opt in _numeric_options(tool):
            extra = ["-d", "1"] if has_d and not opt.startswith("--duration") else []
            argvs.append([tool, *base, *extra, opt])
            names.append(flags + ["interval", "count", "PID"])
    results = run_many(argvs)
    bad = [(r["argv"], r["rc"], r["stderr"][-300:]) for r, n in zip(results, names, strict=True)
           if not one_clear_line(r, n)]
    assert len(results) == len(argvs) > 400
    assert not bad, bad


# --- wrong files, dying PIDs and lumos's own bugs, over every tool ------------------

FILE_TOOLS = ["trace", "latency", "flow", "funccount", "stacks", "funcs", "goroutines",
              "allocs", "http", "sql", "logs", "usdt", "gethostlatency", "profile"]


def test_wrong_files_for_every_tool_that_takes_one(files):
    """No such file, a text file, a bare ELF header, a truncated Go binary, a directory."""
    argvs, want = [], []
    for tool in FILE_TOOLS:
        takes_patterns = tool in ("trace", "latency", "flow", "funccount", "stacks")
        for path in ("/nonexistent/bin", files["text"], files["noexec"], files["truncated"],
                     files["dir"]):
            argvs.append([tool, path, *(["main.*"] if takes_patterns else [])])
            want.append([path, "no such file"])
    results = run_many(argvs)
    bad = [(r["argv"], r["rc"], r["stderr"][-300:]) for r, w in zip(results, want, strict=True)
           if not one_clear_line(r, w)]
    assert not bad, bad


def _uprobe_events() -> str:
    from lumos.bpf.tracefs import tracefs_root
    with open(os.path.join(tracefs_root(), "uprobe_events")) as f:
        return f.read()


def test_pids_that_exit_between_lookup_and_attach(files):
    """A process that exits at once, given to -p while it dies, 40 times over 4 tools:
    each run either traces it (and stops when it is gone) or says it is not running;
    never a traceback, never a probe left behind."""
    import subprocess
    import sys
    before = _uprobe_events()
    code = (f"import subprocess, sys\nfrom lumos.cli import main\n"
            f"p = subprocess.Popen([{files['c']!r}, '1'], stdout=subprocess.DEVNULL)\n"
            f"sys.exit(main([sys.argv[1], '-p', str(p.pid), '-d', '2', *sys.argv[2:]]))\n")
    outcomes = {}
    for i in range(40):
        tool = ["funccount", "trace", "latency", "stacks"][i % 4]
        r = subprocess.run([sys.executable, "-c", code, tool, "f"], capture_output=True,
                           text=True, timeout=60)
        assert "Traceback" not in r.stderr and r.returncode in (0, 2), r.stderr
        if r.returncode == 2:
            lines = [x for x in r.stderr.splitlines() if x.strip()]
            assert len(lines) == 1, r.stderr
            assert any(w in lines[0] for w in ("not running", "has exited")), lines[0]
        outcomes[r.returncode] = outcomes.get(r.returncode, 0) + 1
    assert outcomes.get(2, 0) > 0, outcomes  # the race was hit
    assert _uprobe_events() == before
    _assert_no_programs_held_by(files["c"].encode())


def _assert_no_programs_held_by(mark: bytes) -> None:
    """No process whose command line has `mark` (ours, all ended) holds a BPF program."""
    held = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if mark in cmd:
                held.append((pid, cmd[:80]))
    assert not held, held


def test_a_lumos_bug_says_so_exit_70_traceback_only_with_debug(files):
    import subprocess
    import sys
    code = ("import sys\nimport lumos.tools.funcs as t\n"
            "def broken(args):\n    raise KeyError('deliberate')\n"
            "t.run = broken\nfrom lumos.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, "funcs", files["exe"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 70, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "internal error (a lumos bug" in lines[0] and "deliberate" in lines[0]
    r = subprocess.run([sys.executable, "-c", code, "--debug", "funcs", files["exe"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" in r.stderr and "deliberate" in r.stderr
