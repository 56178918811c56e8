"""RED summaries as Prometheus histograms (`lumos http/sql --prometheus [HOST:]PORT`).

Each scrape reads the kernel's log2 histograms as they are (nothing is cleared while
the exporter runs, so counts only grow, as Prometheus expects):

    lumos_http_server_request_duration_seconds{method, route, status}
    lumos_http_client_request_duration_seconds{method, path, status}
    lumos_sql_query_duration_seconds{op, query, error}

A kernel bucket i holds durations in [2^i, 2^(i+1)) µs, so it becomes the cumulative
bucket le = 2^(i+1) µs in seconds; _sum is exact (the kernel sums nanoseconds). Served
on 127.0.0.1 unless a host is given, from its own registry (no Python process metrics
of lumos itself). Shared conventions with the profiles exporter (output/prometheus).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lumos.errors import UsageError
from lumos.output.red import NUM_SLOTS, fold_path

SERVER, CLIENT, QUERY, EXEC = 1, 2, 3, 4   # probes.reqrecord kinds (not imported: layers)
METRICS = {
    SERVER: ("lumos_http_server_request_duration_seconds",
             "Duration of HTTP requests served (ServeHTTP to the response's end).",
             ("method", "route", "status")),
    CLIENT: ("lumos_http_client_request_duration_seconds",
             "Duration of HTTP client requests (Transport.roundTrip).", ("method", "path",
                                                                         "status")),
    QUERY: ("lumos_sql_query_duration_seconds",
            "Duration of database/sql queries and execs, to the driver's answer.",
            ("op", "query", "error")),
}


def parse_listen(text: str) -> tuple[str, int]:
    """'9464' -> ('127.0.0.1', 9464); 'HOST:PORT' as given."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--prometheus {text!r}: expected [HOST:]PORT") from None
    if not 0 < number < 65536:
        raise UsageError(f"--prometheus {text!r}: port out of range")
    return host or "127.0.0.1", number


class RedCollector:
    """A prometheus_client collector over `read()`: an iterable of buckets with kind,
    slot, status, method, text, count and sum_ns (probes.reqdecode.Bucket)."""

    def __init__(self, read: Callable[[], Iterable]):
        self.read = read

    def collect(self):
        from prometheus_client.core import HistogramMetricFamily
        series: dict[tuple, tuple[list[int], list[int]]] = {}
        for b in self.read():
            kind = QUERY if b.kind == EXEC else b.kind
            if kind not in METRICS:
                continue
            if kind == QUERY:
                labels = ("query" if b.kind == QUERY else "exec", b.text,
                          "true" if b.status else "false")
            else:
                labels = (b.method, fold_path(b.text), str(b.status))
            counts, sums = series.setdefault((kind, labels), ([0] * NUM_SLOTS, [0]))
            counts[min(b.slot, NUM_SLOTS - 1)] += b.count
            sums[0] += b.sum_ns
        # one set of buckets per family (to its largest bucket), so that series can be
        # summed by le
        top: dict[int, int] = {}
        for (kind, _), (counts, _) in series.items():
            top[kind] = max(top.get(kind, 0), max(i for i, c in enumerate(counts) if c))
        families = {}
        for (kind, labels), (counts, sums) in sorted(series.items()):
            name, doc, names = METRICS[kind]
            fam = families.get(kind)
            if fam is None:
                fam = families[kind] = HistogramMetricFamily(name, doc, labels=names)
            buckets, total = [], 0
            for i in range(top[kind] + 1):
                total += counts[i]
                buckets.append((repr((1 << (i + 1)) / 1e6), total))
            buckets.append(("+Inf", total))
            fam.add_metric(list(labels), buckets, sums[0] / 1e9)
        yield from families.values()


def serve(read: Callable[[], Iterable], listen: str):
    """Start the exporter thread; returns (host, port, server) — server.shutdown() ends it."""
    from prometheus_client import CollectorRegistry, start_http_server
    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedCollector(read))
    try:
        server, _thread = start_http_server(port, host, registry=registry)
    except OSError as e:
        raise UsageError(f"--prometheus {listen}: cannot listen: {e.strerror}") from None
    return host, port, server
