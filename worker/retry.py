"""The retry policy billhook's tasks share: exponential backoff with full jitter, capped below the
broker's visibility timeout (worker/config.py refuses a cap at or above it, or Redis would
redeliver a waiting retry in a loop). Longer waits (an outgoing delivery's 3-day schedule) are
kept on the row (`next_attempt_at`) and brought back by a sweep, never held in a countdown."""

from __future__ import annotations

from celery.utils.time import get_exponential_backoff_interval

from shared.config import Settings


def countdown(retries: int, settings: Settings) -> int:
    """Seconds before retry number `retries + 1`: at least 1, at most the cap plus one."""
    return (
        get_exponential_backoff_interval(
            factor=2, retries=retries, maximum=settings.retry_backoff_max_seconds, full_jitter=True
        )
        + 1
    )
