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

