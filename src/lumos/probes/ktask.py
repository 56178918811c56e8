"""Kernel-side building blocks of the kernel tools (execsnoop, opensnoop, runqlat, faults,
swapin): task_struct fields at offsets from vmlinux BTF (lumos's own CO-RE: the running
kernel's layout, never a header's), and the filters these tools compile into their
programs as constants.

    task = TaskLayout.load()                  # task_struct.pid/tgid/real_parent/comm/__state
    emit_current_ppid(a, task, R8, 16, a.frame)  # *(u32 *)(R8 + 16) = current->real_parent->tgid
    emit_comm_filter(a, FP, -24, b"sshd", "out")    # skip unless comm contains "sshd"

Every emitter clobbers R0-R5 and keeps R6-R9 (the BPF calling convention).
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    Add,
    Asm,
    Helper,
    Jne,
    Mov,
    Reg,
    Rsh,
    call,
    ja,
    ldx,
)
from lumos.bpf.btf import BTF, load_vmlinux_btf
from lumos.bpf.frame import Frame
from lumos.errors import NotSupportedError

TASK_COMM_LEN = 16
TASK_RUNNING = 0


def btf_member(btf: BTF, struct_name: str, *paths: str) -> tuple[int, str]:
    """(byte offset, the path found) of the first of `paths` that struct_name has: later
    names are the older kernels' spellings (task_struct.__state was .state before 5.14)."""
    try:
        for path in paths:
            try:
                return btf.member_offset(struct_name, path)[0], path
            except KeyError as e:
                if "has no member" not in str(e):
                    raise
    except KeyError:
        raise NotSupportedError(f"BTF type struct {struct_name}", "",
                                "vmlinux BTF of this kernel does not have it") from None
    raise NotSupportedError(f"BTF field {struct_name}.{paths[0]}", "",
                            "vmlinux BTF of this kernel does not have it")


@dataclass(frozen=True)
class TaskLayout:
    """Where task_struct keeps what the kernel tools read (from vmlinux BTF)."""

    pid: int            # the thread id
    tgid: int           # the process id
    real_parent: int    # struct task_struct *
    comm: int           # char[16]
    state: int          # unsigned int __state (TASK_RUNNING is 0)
    state_name: str = "__state"

    @classmethod
    def load(cls, btf: BTF | None = None) -> TaskLayout:
        btf = btf or load_vmlinux_btf()
        state, name = btf_member(btf, "task_struct", "__state", "state")
        return cls(pid=btf_member(btf, "task_struct", "pid")[0],
                   tgid=btf_member(btf, "task_struct", "tgid")[0],
                   real_parent=btf_member(btf, "task_struct", "real_parent")[0],
                   comm=btf_member(btf, "task_struct", "comm")[0],
                   state=state, state_name=name)


def emit_read_kernel(a: Asm, dst: Reg, dst_off: int, size: int, src: Reg, src_off: int) -> None:
    """bpf_probe_read_kernel(dst + dst_off, size, src + src_off): zeroes dst on a fault."""
    a.emit(Mov.reg(R3, src), Add.imm(R3, src_off), Mov.reg(R1, dst), Add.imm(R1, dst_off),
           Mov.imm(R2, size), call(Helper.probe_read_kernel))


def emit_task_u32(a: Asm, task: Reg, off: int, dst: Reg, dst_off: int, what: str) -> None:
    """*(u32 *)(dst + dst_off) = *(u32 *)(task + off), read with bpf_probe_read_kernel."""
    a.comment(f"emit_task_u32: {what} at task+{off:#x} (vmlinux BTF)")
    emit_read_kernel(a, dst, dst_off, 4, task, off)


def emit_current_ppid(a: Asm, layout: TaskLayout, dst: Reg, dst_off: int,
                      frame: Frame) -> None:
    """*(u32 *)(dst + dst_off) = current->real_parent->tgid (0 if unreadable)."""
    parent = frame.slot("parent_task", 8)
    a.comment(f"emit_current_ppid: current->real_parent at +{layout.real_parent:#x}, "
              f"->tgid at +{layout.tgid:#x} (vmlinux BTF task_struct)")
    a.emit(call(Helper.get_current_task))
    emit_read_kernel(a, FP, parent, 8, R0, layout.real_parent)
    a.emit(ldx(8, R0, FP, parent))
    emit_read_kernel(a, dst, dst_off, 4, R0, layout.tgid)


def emit_uid_filter(a: Asm, uid: int | None, skip: str) -> None:
    """Ignore events of other users (the uid is a constant of the program)."""
    if uid is None:
        return
    a.comment(f"emit_uid_filter: only uid {uid} (-u)")
    a.emit(call(Helper.get_current_uid_gid), Jne.imm32(R0, uid, skip))


def emit_tgid_filter(a: Asm, tgid: int | None, skip: str) -> None:
    if tgid is None:
        return
    a.comment(f"emit_tgid_filter: only process {tgid} (-p)")
    a.emit(call(Helper.get_current_pid_tgid), Rsh.imm(R0, 32), Jne.imm(R0, tgid, skip))


def emit_comm_filter(a: Asm, base: Reg, off: int, needle: bytes | None, skip: str) -> None:
    """Jump to skip unless the 16-byte comm at base+off contains `needle` (libbpf-tools'
    strstr(comm, name) of -n, done in the kernel so filtered events cost no copy).

    comm is NUL-padded (bpf_get_current_comm, strscpy_pad), so matching bytes that are
    all non-NUL is matching within the name. Unrolled: (17 - n) * n compares at most.
    """
    if needle is None:
        return
    n = len(needle)
    if not 0 < n < TASK_COMM_LEN or 0 in needle:
        raise ValueError(f"comm filter {needle!r}: 1 to {TASK_COMM_LEN - 1} non-NUL bytes")
    a.comment(f"emit_comm_filter: comm contains {needle.decode(errors='replace')!r} (-n)")
    found = a.fresh("comm.found")
    for start in range(TASK_COMM_LEN - n):
        nxt = a.fresh("comm.next")
        for j, byte in enumerate(needle):
            a.emit(ldx(1, R1, base, off + start + j), Jne.imm(R1, byte, nxt))
        a.emit(ja(found))
        a.label(nxt)
    a.emit(ja(skip))
    a.label(found)
