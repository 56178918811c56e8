"""lumos list and every tool's --help: one line per tool, examples in every help."""

import importlib

import pytest
from conftest import run_lumos

from lumos.cli import TOOLS


def test_list_names_every_tool_with_its_one_line_help():
    r = run_lumos("list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [x.split()[0] for x in lines] == list(TOOLS)
    for line, modname in zip(lines, TOOLS.values(), strict=True):
        help_text = importlib.import_module(modname).HELP
        assert line.split(None, 1)[1] == help_text and "\n" not in help_text


@pytest.mark.parametrize("tool", list(TOOLS))
def test_every_tool_help_has_examples(tool):
    r = run_lumos(tool, "--help")
    assert r.returncode == 0, r.stderr
    assert "\nexamples:\n" in r.stdout
    examples = [x.strip() for x in r.stdout.split("\nexamples:\n", 1)[1].splitlines()
                if x.strip()]
    assert len(examples) >= 2, examples
    assert all(x.startswith(f"lumos {tool}") for x in examples), examples
    assert any("  # " in x for x in examples), "no example says what it does"
