"""lumos's UAPI constants equal the running kernel's own, read from its BTF."""

from lumos.bpf import sys as bsys
from lumos.bpf.asm import Helper
from lumos.bpf.btf import load_vmlinux_btf
from lumos.probes.codegen import PT_REGS


def test_helper_ids_match_kernel():
    kernel = load_vmlinux_btf().enum_values("bpf_func_id")
    for helper in Helper:
        assert kernel[f"BPF_FUNC_{helper.name}"] == helper.value, helper.name


def test_commands_map_and_prog_types_match_kernel():
    btf = load_vmlinux_btf()
    enums = {name: btf.enum_values(name) for name in
             ("bpf_cmd", "bpf_map_type", "bpf_prog_type", "bpf_attach_type", "bpf_link_type")}
    checked = 0
    for const, value in vars(bsys).items():
        if not const.startswith("BPF_") or not isinstance(value, int):
            continue
        for values in enums.values():
            if const in values:
                assert values[const] == value, const
                checked += 1
    assert checked >= 25


def test_pt_regs_offsets_match_kernel():
    btf = load_vmlinux_btf()
    for field, off in PT_REGS.items():
        assert btf.member_offset("pt_regs", field)[0] == off, field
    assert btf.member_offset("pt_regs", "flags") == (144, 8)


def test_btf_nested_member_through_anonymous_unions():
    off, size = load_vmlinux_btf().member_offset("task_struct", "thread.fsbase")
    assert size == 8 and off > 0
