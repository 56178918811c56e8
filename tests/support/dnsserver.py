"""A DNS server for the tests, on a loopback address of its own, answering every A
question after a known delay; and the way to make a client use it.

The server (dnslib, in threads of the test process) listens on 127.X.Y.Z port 53 —
an address no one else uses — because /etc/resolv.conf cannot name a port. Clients
run under `unshare -m` with private copies of /etc/resolv.conf (that nameserver),
/etc/hosts (the test's names) and /etc/nsswitch.conf (`files dns`: no mdns, which
would send Go's resolver to cgo) bind-mounted over the real ones: nothing outside the
client's mount namespace sees them. The uprobes do: they are on the files' inodes.
"""

from __future__ import annotations

import random
import shlex
import threading
import time
from pathlib import Path

from dnslib import AAAA, QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class DelayedResolver(BaseResolver):
    """A: 127.0.0.<n> for every name; AAAA: no record. Each answer after delay_s."""

    def __init__(self, delay_s: float, ipv6: bool = False):
        self.delay_s = delay_s
        self.ipv6 = ipv6
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def resolve(self, request, handler):
        q = request.q
        name = str(q.qname).rstrip(".")
        with self.lock:
            self.queries.append((name, QTYPE[q.qtype]))
        time.sleep(self.delay_s)
        reply = request.reply()
        if q.qtype == QTYPE.A:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(f"127.0.0.{1 + len(name) % 250}"),
                                ttl=1))
        elif q.qtype == QTYPE.AAAA and self.ipv6:
            reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA("::1"), ttl=1))
        return reply


class LoopbackDNS:
    """with LoopbackDNS(delay_s, tmp_path, hosts={"name": "127.0.0.9"}) as dns:
    subprocess.run(dns.wrap(["client", "name"]))."""

    def __init__(self, delay_s: float, tmp: Path, hosts: dict[str, str] | None = None):
        self.resolver = DelayedResolver(delay_s)
        self.address = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.53"
        self.tmp = Path(tmp)
        self.hosts = hosts or {}
        self.server: DNSServer | None = None

    def __enter__(self) -> LoopbackDNS:
        self.server = DNSServer(self.resolver, address=self.address, port=53,
                                logger=DNSLogger(logf=lambda _line: None))
        self.server.start_thread()
        (self.tmp / "resolv.conf").write_text(f"nameserver {self.address}\n"
                                              "options timeout:5 attempts:1\n")
        (self.tmp / "hosts").write_text("127.0.0.1 localhost\n" + "".join(
            f"{ip} {name}\n" for name, ip in self.hosts.items()))
        (self.tmp / "nsswitch.conf").write_text("hosts: files dns\n")
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.server.server_close()

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run in a mount namespace where /etc/{resolv.conf,hosts,nsswitch.conf}
        are the test's (exec'd: the PID stays the client's)."""
        mounts = " && ".join(f"mount --bind {shlex.quote(str(self.tmp / f))} /etc/{f}"
                             for f in ("resolv.conf", "hosts", "nsswitch.conf"))
        return ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$@"', "sh", *argv]

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self.resolver.lock:
            return list(self.resolver.queries)
