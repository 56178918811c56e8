"""The BPF program of `lumos logs`: one record per log call, rate-limited per call site.

Per hit, in this order (cheapest rejections first):
  1. --level: the call's level against a constant (a filtered-out debug call that is
     below --level costs one read);
  2. rate limit per site: an array slot {window start, count, excess}; past `rate`
     calls in the current second the call is only counted (atomic add) and dropped;
  3. the record: header (time, pid, tid, goid, site), level, verdict (pt_regs->flags at
     the check jump, or the logger's level field), the message (a bounded copy), the
     load bias (regs->ip - the site's ELF address: type words and return addresses
     become ELF addresses in user space, PIE or not), four return addresses (at SP on
     entry, then up the frame-pointer chain) and the attribute slices;
  4. per element (at most MAX_ELEMS): for `any` elements the (type, data) pair, a
     WINDOW-byte copy of what data points at, then up to three "follows" - bounded
     copies behind pointers inside that window (a string's bytes, an error's message,
     a slog.Value's boxed Kind) as the `lumos_follow` map says for the element's type.
     User space fills that map from the binary's type data (golang.typedata) before
     attaching, keyed by the type's ELF address.

Decoding happens in user space (output/anyvalue.py); the kernel only copies bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.bpf.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R8,
    Add,
    Arsh,
    Asm,
    Helper,
    Jeq,
    Jle,
    Jlt,
    Jsge,
    Jsle,
    Lsh,
    Mov,
    Sub,
    atomic_add,
    call,
    exit_,
    ja,
    ld_imm64,
    ld_map_fd,
    ldx,
    st,
    stx,
)
from lumos.bpf.prog import ProgramSpec
from lumos.bpf.sys import BPF_PROG_TYPE_KPROBE
from lumos.probes import codegen
from lumos.probes.capture import R_SP, READ_FAILED, WordLoc, emit_read_word, load_sp
from lumos.probes.eventprog import GoroutineSource, emit_goroutine, emit_header
from lumos.probes.loglayout import (
    LOG_RECORD,
    MSG_MAX,
    NO_FOLLOW,
    RATE_WINDOW_NS,
    slot,
)
from lumos.probes.logtails import emit_flag_failure, emit_iface_tail, emit_inline_tail


@dataclass(frozen=True)
class LogProbe:
    """What one site reads (lumos.targets.logplan.LogSite, in probe terms)."""

    vaddr: int
    sp_delta: int
    level: WordLoc | None
    level_const: int
    level_size: int
    level_min: int | None  # --level: pass when level >= (or <=) this
    level_at_least: bool
    verdict: str  # flags | level_field | none
    receiver: WordLoc | None
    level_chain: tuple[int, ...]
    msg: tuple[WordLoc, WordLoc] | None
    slices: tuple[tuple[WordLoc, WordLoc], ...]
    elem_kind: str  # iface | attr
    attr_key: int = 0  # attr: the follow-map key of slog.Attr
    # std log: the closure output() got; its function (ELF address, in `level`) says
    # its layout: {F, format string, v []any} for these entries, {F, s string} for
    # string_closures, {F, v []any} otherwise
    closure: WordLoc | None = None
    printf_closures: tuple[int, ...] = ()
    string_closures: tuple[int, ...] = ()


class LogProgram:
    def __init__(
        self,
        probes: list[LogProbe],
        channel,
        rate_map,
        follow_map,
        goroutine: GoroutineSource,
        tgid: int | None,
        rate: int,
    ):
        self.probes = probes
        self.channel = channel
        self.rate_map = rate_map
        self.follow_map = follow_map
        self.goroutine = goroutine
        self.tgid = tgid
        self.rate = rate

    @property
    def record_size(self) -> int:
        return LOG_RECORD.size

    def build(self, attach_type: int) -> ProgramSpec:
        a = Asm()
        codegen.save_ctx(a)
        codegen.tgid_filter(a, self.tgid, "out")
        codegen.site_from_cookie(a, "out")
        labels = [f"site.{i}" for i in range(len(self.probes))]
        codegen.dispatch(a, R7, labels)
        for label, p in zip(labels, self.probes, strict=True):
            a.label(label)
            self._emit_site(a, p)
        kinds = {p.elem_kind for p in self.probes if p.slices or p.closure is not None}
        if "iface" in kinds:
            emit_iface_tail(a, self.channel, self.follow_map)
        if "attr" in kinds:
            emit_inline_tail(a, self.channel, self.follow_map)
        a.label("out")
        a.emit(Mov.imm(R0, 0), exit_())
        about = (
            f"lumos logs: {len(self.probes)} site(s), rate {self.rate}/s per site\n"
            f"stack slots:\n{a.frame.layout()}\n" + LOG_RECORD.c_struct()
        )
        return ProgramSpec(
            "lumos_logs",
            BPF_PROG_TYPE_KPROBE,
            tuple(a.finish()),
            expected_attach_type=attach_type,
            about=about,
        )

    # -- per site ----------------------------------------------------------------------

    def _emit_site(self, a: Asm, p: LogProbe) -> None:
        load_sp(a)
        a.comment("emit_site: the call's level (a spill slot or register), sign-extended")
        if p.level is not None:
            a.emit(st(8, FP, slot(a, "level"), 0))
            emit_read_word(a, p.level, FP, slot(a, "level"))
            a.emit(ldx(8, R1, FP, slot(a, "level")))
            shift = 64 - 8 * p.level_size
            if shift:
                a.emit(Lsh.imm(R1, shift), Arsh.imm(R1, shift))
            a.emit(stx(8, FP, slot(a, "level"), R1))
        else:
            a.emit(Mov.imm(R1, p.level_const), stx(8, FP, slot(a, "level"), R1))
        if p.level_min is not None:
            a.comment(
                f"emit_site: --level: pass when level {'>=' if p.level_at_least else '<='}"
                f" {p.level_min}"
            )
            jump = Jsge if p.level_at_least else Jsle
            ok = a.fresh("level_ok")
            a.emit(jump.imm(R1, p.level_min, ok), ja("out"))
            a.label(ok)
        if self.rate > 0:
            self._emit_rate(a)
        self.channel.emit_reserve(a, LOG_RECORD.size, R8, "out")
        emit_goroutine(a, self.goroutine, p.sp_delta, frame=False)
        emit_header(a)
        r = LOG_RECORD
        a.comment("emit_site: level, verdict, bias = regs->ip - ELF address of the site")
        a.emit(ldx(8, R1, FP, slot(a, "level")), stx(8, R8, r.offset("level"), R1))
        if p.verdict == "flags":
            a.emit(ldx(8, R1, R6, codegen.PT_REGS["flags"]), stx(8, R8, r.offset("verdict"), R1))
        elif p.verdict == "level_field":
            self._emit_chain(a, p)
        else:
            a.emit(st(8, R8, r.offset("verdict"), 0))
        a.emit(
            ldx(8, R1, R6, codegen.PT_REGS["ip"]),
            ld_imm64(R2, p.vaddr),
            Sub.reg(R1, R2),
            stx(8, R8, r.offset("bias"), R1),
        )
        self._emit_msg(a, p)
        self._emit_rets(a, p)
        a.comment("emit_site: attribute slices (ptr, len) -> the element tail")
        for k in (0, 1):
            a.emit(st(8, R8, r.offset(f"nelem{k}"), 0))
        a.emit(st(8, R8, r.offset("failed"), 0))
        for k, (ptr, ln) in enumerate(p.slices[:2]):
            emit_read_word(a, ln, R8, r.offset(f"nelem{k}"))
            emit_read_word(a, ptr, FP, (slot(a, "slice0_ptr"), slot(a, "slice1_ptr"))[k])
        if p.closure is not None:
            self._emit_closure(a, p)
            a.emit(st(8, FP, slot(a, "num_slices"), 1), ja("tail.iface"))
        elif not p.slices:
            self.channel.emit_submit(a, R8)
            a.emit(ja("out"))
        elif p.elem_kind == "attr":
            a.emit(ld_imm64(R1, p.attr_key), stx(8, FP, slot(a, "map_key"), R1), ja("tail.inline"))
        else:
            a.emit(st(8, FP, slot(a, "num_slices"), len(p.slices)), ja("tail.iface"))

    def _emit_closure(self, a: Asm, p: LogProbe) -> None:
        """std log: the closure's words; F (minus the bias) into `level`, then the
        message and the []any from where this closure kind keeps them."""
        r = LOG_RECORD
        a.comment("emit_closure: std log's appendOutput closure {F, ...} (log/log.go)")
        emit_read_word(a, p.closure, FP, slot(a, "ptr_scratch"))
        a.emit(
            Mov.reg(R1, FP),
            Add.imm(R1, slot(a, "log_closure")),
            Mov.imm(R2, 40),
            ldx(8, R3, FP, slot(a, "ptr_scratch")),
            call(Helper.probe_read_user),
            ldx(8, R1, FP, slot(a, "log_closure")),
            ldx(8, R2, R8, r.offset("bias")),
            Sub.reg(R1, R2),
            stx(8, R8, r.offset("level"), R1),
        )
        fmt_ = a.fresh("closure_printf")
        text = a.fresh("closure_string")
        slices = a.fresh("closure_slices")
        for entry in p.printf_closures:
            a.emit(ld_imm64(R2, entry), Jeq.reg(R1, R2, fmt_))
        for entry in p.string_closures:
            a.emit(ld_imm64(R2, entry), Jeq.reg(R1, R2, text))
        a.emit(
            ldx(8, R1, FP, slot(a, "log_closure") + 8),
            stx(8, FP, slot(a, "slice0_ptr"), R1),
            ldx(8, R1, FP, slot(a, "log_closure") + 16),
            stx(8, R8, r.offset("nelem0"), R1),
            ja(slices),
        )
        for label, words, used in (
            (fmt_, True, p.printf_closures),
            (text, False, p.string_closures),
        ):
            if not used:  # the verifier refuses unreachable code
                continue
            a.label(label)
            a.emit(
                ldx(8, R1, FP, slot(a, "log_closure") + 16),
                stx(8, R8, r.offset("msg_len"), R1),
                ldx(8, R1, FP, slot(a, "log_closure") + 8),
                stx(8, FP, slot(a, "ptr_scratch"), R1),
            )
            if words:
                a.emit(
                    ldx(8, R1, FP, slot(a, "log_closure") + 24),
                    stx(8, FP, slot(a, "slice0_ptr"), R1),
                    ldx(8, R1, FP, slot(a, "log_closure") + 32),
                    stx(8, R8, r.offset("nelem0"), R1),
                )
            _emit_msg_copy(a)
            a.emit(ja(slices))
        a.label(slices)

    def _emit_rate(self, a: Asm) -> None:
        a.comment(f"emit_rate: at most {self.rate} calls a second per site; the rest counted")
        a.emit(
            call(Helper.ktime_get_ns),
            stx(8, FP, slot(a, "now_ns"), R0),
            stx(4, FP, slot(a, "map_key"), R7),
            ld_map_fd(R1, self.rate_map),
            Mov.reg(R2, FP),
            Add.imm(R2, slot(a, "map_key")),
            call(Helper.map_lookup_elem),
            Jeq.imm(R0, 0, "out"),
        )
        counted = a.fresh("rate_counted")
        a.emit(
            ldx(8, R1, FP, slot(a, "now_ns")),
            ldx(8, R2, R0, 0),
            Mov.reg(R3, R1),
            Sub.reg(R3, R2),
            Jlt.imm(R3, RATE_WINDOW_NS, counted),
            stx(8, R0, 0, R1),
            st(8, R0, 8, 0),
        )
        a.label(counted)
        ok = a.fresh("rate_ok")
        a.emit(
            Mov.imm(R1, 1),
            ldx(8, R2, R0, 8),
            Jlt.imm(R2, self.rate, ok),
            atomic_add(8, R0, 16, R1),
            ja("out"),
        )
        a.label(ok)
        a.emit(atomic_add(8, R0, 8, R1))

    def _emit_chain(self, a: Asm, p: LogProbe) -> None:
        a.comment(f"emit_chain: the logger's level: receiver -> {list(p.level_chain)}")
        r = LOG_RECORD.offset("verdict")
        a.emit(st(8, R8, r, 0))
        emit_read_word(a, p.receiver, FP, slot(a, "ptr_scratch"))
        for i, off in enumerate(p.level_chain):
            last = i == len(p.level_chain) - 1
            a.emit(
                Mov.reg(R1, R8) if last else Mov.reg(R1, FP),
                Add.imm(R1, r if last else slot(a, "ptr_scratch")),
                Mov.imm(R2, 4 if last else 8),
                ldx(8, R3, FP, slot(a, "ptr_scratch")),
                Add.imm(R3, off),
                call(Helper.probe_read_user),
            )

    def _emit_msg(self, a: Asm, p: LogProbe) -> None:
        r = LOG_RECORD
        a.emit(st(8, R8, r.offset("msg_len"), 0))
        if p.msg is None:
            return
        a.comment(f"emit_msg: the message, at most {MSG_MAX} bytes")
        emit_read_word(a, p.msg[1], R8, r.offset("msg_len"))
        emit_read_word(a, p.msg[0], FP, slot(a, "ptr_scratch"))
        _emit_msg_copy(a)

    def _emit_rets(self, a: Asm, p: LogProbe) -> None:
        r = LOG_RECORD
        a.comment(
            f"emit_rets: return address at entry SP (SP + {p.sp_delta}), then the "
            "frame-pointer chain (BP is this frame's once the prologue pushed it)"
        )
        a.emit(
            Mov.reg(R1, R8),
            Add.imm(R1, r.offset("ret0")),
            Mov.imm(R2, 8),
            Mov.reg(R3, R_SP),
            Add.imm(R3, p.sp_delta),
            call(Helper.probe_read_user),
        )
        for k in (1, 2, 3):
            a.emit(st(8, R8, r.offset(f"ret{k}"), 0))
        own = a.fresh("bp_own")
        walk = a.fresh("bp_walk")
        a.emit(
            ldx(8, R1, R6, codegen.PT_REGS["bp"]),
            stx(8, FP, slot(a, "bp_walk"), R1),
            Mov.reg(R2, R_SP),
            Add.imm(R2, p.sp_delta - 8),
            Jeq.reg(R1, R2, own),
            ja(walk),
        )
        a.label(own)  # BP = this frame: the caller's BP is saved at 0(BP)
        a.emit(
            Mov.reg(R1, FP),
            Add.imm(R1, slot(a, "bp_walk")),
            Mov.imm(R2, 8),
            ldx(8, R3, FP, slot(a, "bp_walk")),
            call(Helper.probe_read_user),
        )
        a.label(walk)
        end = a.fresh("rets_done")
        for k in (1, 2, 3):
            a.emit(
                ldx(8, R3, FP, slot(a, "bp_walk")),
                Jeq.imm(R3, 0, end),
                Mov.reg(R1, R8),
                Add.imm(R1, r.offset(f"ret{k}")),
                Mov.imm(R2, 8),
                Add.imm(R3, 8),
                call(Helper.probe_read_user),
            )
            if k < 3:
                a.emit(
                    Mov.reg(R1, FP),
                    Add.imm(R1, slot(a, "bp_walk")),
                    Mov.imm(R2, 8),
                    ldx(8, R3, FP, slot(a, "bp_walk")),
                    call(Helper.probe_read_user),
                )
        a.label(end)


def follow_value(follows: list[tuple[int, int]]) -> bytes:
    """The lumos_follow map value: up to three (ptr offset, len offset | NO_FOLLOW)."""
    out = bytearray([NO_FOLLOW] * 8)
    for k, (p, ln) in enumerate(follows[:3]):
        out[2 * k], out[2 * k + 1] = p, ln
    return bytes(out)


def _emit_msg_copy(a: Asm) -> None:
    """record.msg = the msg_len bytes (at most MSG_MAX) at ptr_scratch; a failed read
    flags msg_len (READ_FAILED), never an empty message for '?'."""
    r = LOG_RECORD
    done = a.fresh("msg_done")
    clamped = a.fresh("msg_clamped")
    a.emit(
        ldx(8, R2, R8, r.offset("msg_len")),
        Jeq.imm(R2, 0, done),
        Jle.imm(R2, MSG_MAX, clamped),
        Mov.imm(R2, MSG_MAX),
    )
    a.label(clamped)
    a.emit(
        Mov.reg(R1, R8),
        Add.imm(R1, r.offset("msg")),
        ldx(8, R3, FP, slot(a, "ptr_scratch")),
        call(Helper.probe_read_user),
    )
    emit_flag_failure(a, "msg_len", READ_FAILED)
    a.label(done)
