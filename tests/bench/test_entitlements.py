"""The entitlements row of `make bench`: percentiles of the timed requests, and the verdict against
the p99 target, which holds on PostgreSQL only."""

from __future__ import annotations

from bench.entitlements import Latency, table_row


def test_percentiles_are_taken_over_the_sorted_timings():
    timings = [float(n) for n in range(200, 0, -1)]  # 1..200 ms, in any order

    latency = Latency.of("gunicorn", 50, timings)

    assert (latency.p50_ms, latency.p99_ms, latency.max_ms, latency.requests) == (101.0, 199.0, 200.0, 200)


def test_the_row_says_met_only_at_or_under_ten_ms_on_postgresql():
    fast = Latency("gunicorn", 2000, 500, 2.0, 9.5, 12.0).__dict__
    slow = {**fast, "p99_ms": 10.5}

    assert table_row(fast, postgres=True).endswith("| 9.50 | ≤ 10 on PostgreSQL | met |")
    assert table_row(slow, postgres=True).endswith("| NOT met |")
    assert table_row(slow, postgres=False).endswith("| n/a (SQLite) |")
