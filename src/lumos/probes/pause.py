"""Probe sites that step aside once their rate limit is spent.

A uprobe costs the traced thread a trap (about 1 µs here) whether or not the BPF
program then drops the call, so a rate limit in the program alone cannot make a hot call
site cheap: at 100,000 calls a second the traps alone take 11% of a CPU. A SiteSwitch
holds one link per site (attach_sites(separate=True)). Each poll it reads the site's
rate window, {window start (CLOCK_MONOTONIC ns), calls let through, calls over the
limit}, which the BPF program keeps; once the window's quota is spent it detaches the
site until the window ends, then attaches it again. Calls made while a site is detached
are neither shown nor counted: the time is, and the tool says so.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from lumos.errors import AttachError
from lumos.probes.attach import Attached, attach_group
from lumos.probes.probesite import ProbeSite

RATE_SLOT = struct.Struct("<QQQ")  # window start ns, calls let through, calls over


@dataclass
class Paused:
    windows: int = 0      # windows in which the site stepped aside
    seconds: float = 0.0  # time detached, in all


class SiteSwitch:
    def __init__(self, attached: Attached, sites: list[ProbeSite], rate_map, rate: int,
                 pid: int | None, window_ns: int):
        assert attached.by_site is not None, "attach_sites(separate=True) gives one link a site"
        self.attached = attached
        self.sites = sites
        self.rate_map = rate_map
        self.rate = rate
        self.pid = pid
        self.window_ns = window_ns
        self.links = dict(attached.by_site)  # index -> link, while attached
        self.detached: dict[int, tuple[int, int]] = {}  # index -> (since, until) in ns
        self.paused = {i: Paused() for i in self.links}

    def tick(self) -> None:
        now = time.monotonic_ns()  # the same clock as the program's bpf_ktime_get_ns
        for i, (_, until) in list(self.detached.items()):
            if now >= until:
                self._end_pause(i, now)
                self._attach(i)
        for i, link in list(self.links.items()):
            raw = self.rate_map.lookup(struct.pack("<I", i))
            if raw is None:
                continue
            start, let_through, _ = RATE_SLOT.unpack_from(raw)
            if let_through >= self.rate and now - start < self.window_ns:
                link.close()
                del self.links[i]
                self.detached[i] = (now, start + self.window_ns)
                self.paused[i].windows += 1

    def _end_pause(self, i: int, now: int) -> None:
        since, _ = self.detached.pop(i)
        self.paused[i].seconds += (now - since) / 1e9

    def _attach(self, i: int) -> None:
        site = self.sites[i]
        try:
            got, _ = attach_group(self.attached.program, self.attached.mode, site.path,
                                  [(i, site)], self.pid, site.retprobe)
        except AttachError:  # the process is gone: the runner notices and stops
            return
        if got:
            self.links[i] = got[0]

    def close(self) -> None:
        """Detach everything; close the books on sites detached right now."""
        now = time.monotonic_ns()
        for i in list(self.detached):
            self._end_pause(i, now)
        for link in self.links.values():
            link.close()
        self.links.clear()
