"""Kernel layouts the kernel tools read at run time (tracefs formats, vmlinux BTF), and
the one-line errors when this kernel lacks one of them."""

import subprocess
import sys

import pytest

from lumos.bpf.btf import load_vmlinux_btf, raw_tracepoint_args
from lumos.bpf.tracefs import require_tracepoint, tracepoint_fields
from lumos.errors import NotSupportedError
from lumos.probes.ktask import TaskLayout, btf_member


def test_tracepoint_fields_as_the_format_file_says():
    fields = require_tracepoint("syscalls", "sys_enter_execve", ("filename", "argv"))
    assert fields == {k: v for k, v in tracepoint_fields("syscalls", "sys_enter_execve").items()
                      if k in ("filename", "argv")}
    assert fields["argv"].size == 8 and fields["argv"].offset > fields["filename"].offset


def test_missing_tracepoint_or_field_is_named():
    with pytest.raises(NotSupportedError, match="tracepoint syscalls:sys_enter_no_such_call"):
        require_tracepoint("syscalls", "sys_enter_no_such_call")
    with pytest.raises(NotSupportedError, match="has no field no_such_field"):
        require_tracepoint("syscalls", "sys_exit_execve", ("ret", "no_such_field"))


def test_raw_tracepoint_prototypes_from_btf():
    btf = load_vmlinux_btf()
    assert raw_tracepoint_args(btf, "sched_switch")[:3] == [
        "_Bool", "struct task_struct *", "struct task_struct *"]
    assert raw_tracepoint_args(btf, "sched_wakeup") == ["struct task_struct *"]
    with pytest.raises(NotSupportedError, match="btf_trace_no_such_event"):
        raw_tracepoint_args(btf, "no_such_event")


def test_task_layout_is_the_kernels():
    btf = load_vmlinux_btf()
    t = TaskLayout.load(btf)
    assert (t.pid, t.tgid, t.real_parent, t.comm) == tuple(
        btf.member_offset("task_struct", m)[0] for m in ("pid", "tgid", "real_parent", "comm"))
    assert t.tgid == t.pid + 4  # pid_t pid; pid_t tgid; next to each other since 2.6
    assert btf_member(btf, "task_struct", "no_such", "__state") == (t.state, "__state")
    with pytest.raises(NotSupportedError, match=r"BTF field task_struct\.no_such"):
        btf_member(btf, "task_struct", "no_such")
    with pytest.raises(NotSupportedError, match="BTF type struct no_such_struct"):
        btf_member(btf, "no_such_struct", "x")


@pytest.mark.parametrize("patch, argv, message", [
    ("import lumos.probes.runqlat as m; m.PROTOS['sched_no_such'] = ['struct task_struct *']",
     ["runqlat"], "raw tracepoint sched_no_such is not supported by this kernel: vmlinux BTF "
                  "has no btf_trace_sched_no_such prototype"),
    ("import lumos.probes.proccount as m; m.SWAPIN_TRACEPOINT = ('memcg', 'no_such_event')",
     ["swapin"], "tracepoint memcg:no_such_event is not supported by this kernel"),
])
def test_a_tool_needing_what_this_kernel_lacks_says_so_in_one_line(patch, argv, message):
    """The tool asks the real kernel for a tracepoint it does not have."""
    code = f"{patch}\nimport sys\nfrom lumos.cli import main\nsys.exit(main({argv!r}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"lumos {argv[0]}: {message}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
