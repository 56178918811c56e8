"""doctor and feature probes: what works here is found working; what is absent here
(kprobes, fentry, ftrace lists, a hardware PMU) is reported with the reason."""

import json

import pytest
from conftest import run_lumos

from lumos.bpf import features

# Features every kernel this machine class runs (6.18) must have.
PRESENT = ("privileges", "btf", "bpf_syscall", "ringbuf", "uprobes", "bpf_cookie",
           "uprobe_multi", "tracepoints", "raw_tracepoints", "perf_events",
           "probe_read_kernel")


@pytest.mark.parametrize("name", PRESENT)
def test_features_older_than_this_kernel_work(name):
    feat = features.FEATURES[name]
    if feat.min_kernel:
        major, minor = map(int, feat.min_kernel.split("."))
        assert features.kernel_version() >= (major, minor)
    assert features.check(name) is None, features.check(name)


def test_known_absences_are_explained():
    assert "CONFIG_KPROBES" in str(features.check("kprobes"))
    assert "EPERM" in str(features.check("fentry"))
    assert "available_filter_functions" in str(features.check("ftrace_lists"))


def test_doctor_table_and_exit_code():
    r = run_lumos("doctor")
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[2:] if ln.strip()}
    assert " yes " in lines["uprobe_multi"]
    assert " no " in lines["kprobes"] and "tracepoints instead" in lines["kprobes"]
    assert "lumos can trace here." in r.stdout


def test_doctor_json():
    r = run_lumos("doctor", "--json")
    rows = {x["feature"]: x for x in map(json.loads, r.stdout.splitlines()) if "feature" in x}
    assert rows["ringbuf"]["available"] is True
    assert rows["fentry"]["available"] is False
    assert rows["fentry"]["min_kernel"] == "5.5"
