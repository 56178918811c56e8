"""Attaching one program to many uprobe sites: one uprobe_multi link per file (Linux 6.6),
or one perf event per site where uprobe_multi is missing (or forced off).

The program's expected attach type must match the link kind, so this module loads
the program too: give it a function that builds the ProgramSpec for an attach type.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import groupby

from lumos import filestamp
from lumos.bpf import features
from lumos.bpf import sys as bsys
from lumos.bpf.links import (
    Link,
    LinkGroup,
    attach_tracepoint,
    attach_uprobe,
    attach_uprobe_multi,
    ensure_fd_limit,
)
from lumos.bpf.prog import Program, ProgramSpec, load_program
from lumos.errors import AttachError
from lumos.probes.probesite import ProbeSite, TracepointSite

ENOTSUPP = 524  # the kernel's internal "cannot probe this instruction"

MULTI = "uprobe_multi"
PER_SITE = "perf_event"


def choose_mode(force: str | None = None) -> str:
    if force:
        return force
    return MULTI if features.has("uprobe_multi") else PER_SITE


@dataclass
class Attached:
    program: Program
    links: list[Link]
    skipped: list[ProbeSite]  # sites the kernel refused to probe (e.g. an INT3 there)
    mode: str
    by_site: dict[int, Link] | None = None  # with separate=True: each site's own link


def attach_sites(build: Callable[[int], ProgramSpec], sites: list[ProbeSite],
                 pid: int | None, stack: ExitStack, mode: str | None = None,
                 indexes: list[int] | None = None, separate: bool = False) -> Attached:
    """Load build(attach_type) and attach it at every site; everything goes on `stack`.

    Cookies are site indexes (see ProbeSite.cookie): positions in `sites`, or
    `indexes[i]` for sites[i] when given (attaching part of a larger list). Sites whose
    instruction the kernel cannot probe are skipped and listed in the result, never
    silently. separate: one link per site (by_site), so that each can be detached
    and attached again on its own (probes.pause).
    """
    mode = choose_mode(mode)
    attach_type = bsys.BPF_TRACE_UPROBE_MULTI if mode == MULTI else 0
    prog = stack.enter_context(load_program(build(attach_type)))
    numbered = zip(indexes, sites, strict=True) if indexes is not None else enumerate(sites)
    # one link per file and kind: uretprobes are a flag of the whole uprobe_multi link.
    # Return sites go first: the kernel runs the consumers of one address newest first,
    # so where a function is a bare RET (net/http.nop) its entry, registered after the
    # RET, fires before it and the call is paired with its return, not after it.
    def key(t):
        return (t[1].path, t[1].retprobe, t[0] if separate else 0)

    indexed = sorted(numbered, key=lambda t: (t[1].path, t[1].retprobe,
                                              t[1].kind != "return",
                                              t[0] if separate else 0))
    links: list[Link] = []
    skipped: list[ProbeSite] = []
    by_site: dict[int, Link] = {}
    if mode == PER_SITE:
        ensure_fd_limit(2 * len(sites))
    for (path, ret, _), group in groupby(indexed, key=key):
        group = list(group)
        filestamp.check_unchanged(path)
        got, bad = attach_group(prog, mode, path, group, pid, ret)
        links.extend(stack.enter_context(link) for link in got)
        skipped.extend(bad)
        if separate and got:
            by_site[group[0][0]] = got[0]
    for path in {s.path for s in sites}:  # changed while attaching: the stack detaches
        filestamp.check_unchanged(path)
    if not links:
        raise AttachError("the kernel refused every probe site: "
                          + ", ".join(s.name for s in skipped[:5]))
    return Attached(prog, links, skipped, mode, by_site if separate else None)


def attach_group(prog, mode: str, path: str, group: list[tuple[int, ProbeSite]],
                 pid: int | None, ret: bool = False) -> tuple[list[Link], list[ProbeSite]]:
    """Links for (index, site) pairs in one file: one uprobe_multi link, or a group of
    perf-event uprobes; the sites the kernel refused."""
    if mode == MULTI:
        return _attach_multi(prog, path, group, pid, ret)
    return _attach_each(prog, path, group, pid, ret)


def _refused(e: AttachError) -> bool:
    return e.errno in (ENOTSUPP, errno.EINVAL, errno.EOPNOTSUPP)


def _attach_multi(prog, path, group, pid, ret=False) -> tuple[list[Link], list[ProbeSite]]:
    """One link for the group; if the kernel refuses a site, bisect to isolate it."""
    try:
        return [attach_uprobe_multi(prog, path, [s.offset for _, s in group],
                                    [s.cookie(i) for i, s in group], pid or -1, ret,
                                    ref_ctr_offsets=[s.ref_ctr_offset for _, s in group])], []
    except AttachError as e:
        if not _refused(e):
            raise
        if len(group) == 1:
            return [], [group[0][1]]
    half = len(group) // 2
    links, bad = [], []
    try:
        for part in (group[:half], group[half:]):
            got, refused = _attach_multi(prog, path, part, pid, ret)
            links += got
            bad += refused
    except BaseException:
        for link in reversed(links):
            link.close()
        raise
    return links, bad


def _attach_each(prog, path, group, pid, ret=False) -> tuple[list[Link], list[ProbeSite]]:
    per: list[Link] = []
    bad: list[ProbeSite] = []
    try:
        for i, s in group:
            try:
                per.append(attach_uprobe(prog, path, s.offset, pid or -1, s.cookie(i), ret,
                                         ref_ctr_offset=s.ref_ctr_offset))
            except AttachError as e:
                if not _refused(e):
                    raise
                bad.append(s)
    except BaseException:
        for link in reversed(per):
            link.close()
        raise
    return ([LinkGroup(per, f"{len(per)} uprobes in {path}")] if per else []), bad


def attach_tracepoint_sites(build: Callable[[int], ProgramSpec], sites: list[TracepointSite],
                            first_index: int, stack: ExitStack) -> Attached:
    """Load build(BPF_PROG_TYPE_TRACEPOINT) once and attach it to every tracepoint.

    Cookies continue the site numbering at first_index (uprobe sites come first).
    """
    prog = stack.enter_context(load_program(build(bsys.BPF_PROG_TYPE_TRACEPOINT)))
    links = [stack.enter_context(attach_tracepoint(prog, s.category, s.event,
                                                   s.cookie(first_index + i)))
             for i, s in enumerate(sites)]
    return Attached(prog, links, [], "tracepoint")
