"""RED summaries: id folding, quantiles from log2 buckets (with their sums), --filter."""

from __future__ import annotations

from lumos.output.red import Stats, fold_path, format_summary
from lumos.output.reqlines import format_arg, matches
from lumos.probes.decode import Text
from lumos.probes.filter import parse_filter
from lumos.probes.reqdecode import GoTime


def test_ids_are_folded():
    assert fold_path("/user/123") == "/user/{id}"
    assert fold_path("/user/123/orders/9f86d081884c7d65") == "/user/{id}/orders/{id}"
    assert fold_path("/v2/items/550e8400-e29b-41d4-a716-446655440000") == "/v2/items/{id}"
    assert fold_path("/v2/api") == "/v2/api" and fold_path("/") == "/"
    assert fold_path("/a/deadbeef") == "/a/deadbeef"    # hex letters only: a word
    assert fold_path("/a/1e2f") == "/a/1e2f"            # short: a word


def _stats(durations_ns):
    s = Stats()
    for d in durations_ns:
        s.add((d // 1000).bit_length() - 1 if d >= 2000 else 0, 1, d, False)
    return s


def test_quantiles_stay_in_their_bucket_and_one_call_is_exact():
    assert _stats([51_610_000]).quantile_us(0.99) == 51_610.0
    s = _stats([10_000] * 98 + [1_500_000] * 2)
    assert 8 <= s.quantile_us(0.5) < 16
    assert 1024 <= s.quantile_us(0.99) < 2048
    assert s.count == 100 and s.sum_ns == 98 * 10_000 + 2 * 1_500_000


def test_summary_table():
    text = format_summary("requests served", "ROUTE", {"GET /user/{id}": _stats([1_000_000])},
                          2.0)
    assert text.splitlines()[1].split() == ["ROUTE", "COUNT", "ERRORS", "RATE/s", "P50ms",
                                            "P90ms", "P99ms", "AVGms"]
    assert text.splitlines()[2].split() == ["GET", "/user/{id}", "1", "0", "0.5", "1.00",
                                            "1.00", "1.00", "1.00"]


def test_go_time_and_args():
    # time.Date(2024, 2, 29, 12, 30, 45, 123456000, time.UTC): no monotonic reading
    t = GoTime(123456000, 63844806645)
    assert format_arg(t) == "2024-02-29T12:30:45.123456Z"
    assert format_arg(Text(b"h\xc3\xa9llo", 6)) == '"héllo"'
    assert format_arg(Text(b"abc", 10)) == '"abc..."'
    assert [format_arg(v) for v in (None, True, -7, 2.5)] == ["nil", "true", "-7", "2.5"]


def test_filter_over_events():
    expr = parse_filter('status >= 500 && method == "POST"')
    assert matches(expr, {"status": 503, "method": "POST"})
    assert not matches(expr, {"status": 200, "method": "POST"})
    assert not matches(expr, {"status": None, "method": "POST"})   # unknown never matches
