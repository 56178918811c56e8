"""lumos trace prints interface arguments by value, decoded by the runtime's own type
data: DWARF or not, PIE or not."""

from __future__ import annotations

import pytest
from conftest import run_lumos
from support.gobuild import VERSIONS, build

SIG = "main.Ifaces(e error, a any, s interface{ String() string })"


@pytest.mark.parametrize("variant", ["default", "stripped", "pie"])
@pytest.mark.parametrize("version", VERSIONS)
def test_interface_arguments_by_value(version, variant):
    exe = build("alltypes", version, variant)
    pattern = SIG if variant == "stripped" else "main.Ifaces"
    r = run_lumos("trace", "-c", str(exe), pattern)
    assert r.returncode == 0, r.stderr
    # alltypes calls Ifaces(errors.New("e"), 42, Named(7))
    line = next(x for x in r.stdout.splitlines() if "main.Ifaces(" in x)
    assert line.endswith('main.Ifaces(e=*errors.errorString("e"), a=42, s=main.Named(7))')
    r = run_lumos("trace", "-c", str(exe), pattern, "--json")
    assert '"e":{"type":"*errors.errorString","value":"e","words":[' in r.stdout
