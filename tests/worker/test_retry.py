"""The shared retry policy: jittered exponential backoff that never reaches the visibility timeout."""

from __future__ import annotations

from worker import retry


def test_a_countdown_is_at_least_a_second_and_never_past_the_cap(settings):
    capped = settings.with_overrides(retry_backoff_max_seconds=30, broker_visibility_timeout_seconds=3600)
    waits = [retry.countdown(retries, capped) for retries in range(12) for _ in range(20)]
    assert min(waits) >= 1 and max(waits) <= 31
    assert max(retry.countdown(10, capped) for _ in range(200)) > 2  # it grows (full jitter: random below 2^n)
