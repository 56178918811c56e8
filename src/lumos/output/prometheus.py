"""In-kernel counts and histograms served as Prometheus metrics (prometheus_client).

Any tool adds `--prometheus [HOST:]PORT` with add_prometheus_argument(p) and, once its
maps exist, `s.enter(serve_metrics(args, collect))`, where collect() returns metric
families built by log2_histogram() or counter() from the tool's own read(). The
collector runs on each scrape, in the HTTP server's thread: every scrape reads the
kernel maps afresh, nothing is cached or copied per event. Counters and histograms
are cumulative, so a tool serving metrics does not clear its maps at -i intervals.

Conventions (prometheus.io/docs/practices/naming): base units (seconds), `_total` on
counters, a `lumos_` prefix, labels `function` and the --by argument's name. A log2
slot [lo, hi] becomes the bucket le=hi (in seconds): an observation v (an integer
number of the tool's units) is in it exactly when v <= hi. Bound to 127.0.0.1 unless
a host is given: metrics name the functions of the traced program.
"""

from __future__ import annotations

import contextlib
import re

from lumos.errors import UsageError
from lumos.output.hist import slot_range

DEFAULT_HOST = "127.0.0.1"


def add_prometheus_argument(p) -> None:
    p.add_argument("--prometheus", metavar="[HOST:]PORT",
                   help="serve the counts as Prometheus metrics on HOST:PORT "
                        "(default host 127.0.0.1) while running")


def parse_listen(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--prometheus {spec}: give [HOST:]PORT, e.g. 9464 or 0.0.0.0:9464")
    return host, int(port)


class _Collector:
    def __init__(self, collect):
        self._collect = collect

    def collect(self):
        yield from self._collect()

    def describe(self):  # no describe-time scrape of the kernel maps at registration
        return []


class MetricsServer:
    """A prometheus_client HTTP server on its own registry; close() stops it."""

    def __init__(self, host: str, port: int, collect):
        from prometheus_client import CollectorRegistry, start_http_server
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(collect))
        try:
            self._server, self._thread = start_http_server(port, host, self.registry)
        except OSError as e:
            raise UsageError(f"--prometheus {host}:{port}: {e.strerror or e}") from None
        self.address = (host, self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve_metrics(args, collect):
    """A MetricsServer if the tool was given --prometheus, else a no-op context."""
    spec = getattr(args, "prometheus", None)
    if not spec:
        return contextlib.nullcontext()
    server = MetricsServer(*parse_listen(spec), collect)
    import sys
    print(f"lumos: serving Prometheus metrics on http://{server.address[0]}:"
          f"{server.address[1]}/metrics", file=sys.stderr)
    return server


def label_name(name: str) -> str:
    """A valid label name for an argument name (function and le are taken)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", name) or "arg"
    if name[0].isdigit() or name in ("function", "le") or name.startswith("__"):
        name = "arg_" + name
    return name


def log2_histogram(name: str, doc: str, labels: list[str], rows):
    """rows: (label values, log2 slot counts, sum in units, unit in seconds)."""
    from prometheus_client.core import HistogramMetricFamily
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, slots, total, unit_s in rows:
        last = max((i for i, c in enumerate(slots) if c), default=0)
        buckets, acc = [], 0
        for i in range(last + 1):
            acc += slots[i]
            buckets.append((_float(slot_range(i)[1] * unit_s), acc))
        buckets.append(("+Inf", acc))
        fam.add_metric([str(v) for v in values], buckets, total * unit_s)
    return fam


def counter(name: str, doc: str, labels: list[str], rows):
    """rows: (label values, count). name without `_total` (prometheus_client adds it)."""
    from prometheus_client.core import CounterMetricFamily
    fam = CounterMetricFamily(name, doc, labels=labels)
    for values, n in rows:
        fam.add_metric([str(v) for v in values], n)
    return fam


def _float(x: float) -> str:
    return repr(float(f"{x:.12g}"))  # 15 us is 1.5e-05, not 1.4999999999999999e-05


# -- the lead's tools' metrics --------------------------------------------------------

def latency_metrics(functions, hists, unit_ns: int):
    """lumos latency: lumos_function_latency_seconds{function, <by arg>}."""
    by_names = sorted({f.by.name for f in functions if f.by is not None})
    labels = ["function"] + [label_name(n) for n in by_names]
    rows = []
    for (fi, by), h in sorted(hists.items(), key=lambda t: (t[0][0], str(t[0][1]))):
        fn = functions[fi]
        vals = [fn.name] + [(by if fn.by is not None and fn.by.name == n else "")
                            for n in by_names]
        rows.append((vals, h.slots, h.sum, unit_ns / 1e9))
    return [log2_histogram("lumos_function_latency_seconds",
                           "Latency of traced functions (log2 buckets, in the kernel)",
                           labels, rows)]


def call_count_metrics(per_function: dict[str, int]):
    """lumos funccount: lumos_function_calls_total{function}."""
    return [counter("lumos_function_calls", "Calls of traced functions (or tracepoint hits)",
                    ["function"], sorted(([n], c) for n, c in per_function.items()))]
