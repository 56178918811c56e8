"""RED summaries as Prometheus histograms (`lumos http/sql --prometheus [HOST:]PORT`),
on the shared exporter (output/prometheus: its server, its log2 bucket convention).

Each scrape reads the kernel's log2 histograms as they are (nothing is cleared while
the exporter runs, so counts only grow, as Prometheus expects):

    lumos_http_server_request_duration_seconds{method, route, status}
    lumos_http_client_request_duration_seconds{method, path, status}
    lumos_sql_query_duration_seconds{op, query, error}

A kernel bucket i holds durations of [2^i, 2^(i+1) - 1] whole µs, so it becomes the
bucket le = (2^(i+1) - 1) µs in seconds (output/prometheus.log2_histogram); _sum is exact
(the kernel sums nanoseconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lumos.output.prometheus import log2_histogram
from lumos.output.red import NUM_SLOTS, fold_path

SERVER, CLIENT, QUERY, EXEC = 1, 2, 3, 4   # probes.reqrecord kinds (not imported: layers)
METRICS = {
    SERVER: ("lumos_http_server_request_duration_seconds",
             "Duration of HTTP requests served (ServeHTTP to the response's end).",
             ["method", "route", "status"]),
    CLIENT: ("lumos_http_client_request_duration_seconds",
             "Duration of HTTP client requests (Transport.roundTrip).",
             ["method", "path", "status"]),
    QUERY: ("lumos_sql_query_duration_seconds",
            "Duration of database/sql queries and execs, to the driver's answer.",
            ["op", "query", "error"]),
}
US = 1e-6


def red_metrics(read: Callable[[], Iterable]):
    """Metric families from read(): buckets with kind, slot, status, method, text, count
    and sum_ns (probes.reqdecode.Bucket)."""
    series: dict[tuple, tuple[list[int], list[int]]] = {}
    for b in read():
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
    families = []
    for kind, (name, doc, names) in METRICS.items():
        rows = [(labels, counts, sums[0] / 1000, US)
                for (k, labels), (counts, sums) in sorted(series.items()) if k == kind]
        if rows:
            families.append(log2_histogram(name, doc, names, rows))
    return families
