"""The sweeper finds events that should be queued but may not be."""

from __future__ import annotations

from datetime import timedelta

from shared import inbox
from shared.models import WebhookEvent
from tests.factories.inbox import record

GRACE = 60


def test_due_for_sweep_picks_received_events_older_than_the_grace(session, now):
    stale = record(session, now - timedelta(seconds=GRACE + 1)).id
    fresh = record(session, now - timedelta(seconds=GRACE - 1)).id

    due = inbox.due_for_sweep(session, now=now, grace_seconds=GRACE)

    assert stale in due
    assert fresh not in due


def test_due_for_sweep_skips_done_failed_and_ignored_events(session, now):
    long_ago = now - timedelta(days=1)
    done = record(session, long_ago).id
    inbox.mark_succeeded(session, session.get(WebhookEvent, done), at=long_ago)
    failed = record(session, long_ago).id
    inbox.record_failure(session, failed, "PermanentError: no", at=long_ago, retry_at=None)
    record(session, long_ago, handled=False)

    assert inbox.due_for_sweep(session, now=now, grace_seconds=GRACE) == []


def test_due_for_sweep_waits_for_a_scheduled_retry_plus_the_grace(session, now):
    pk = record(session, now - timedelta(hours=1)).id
    retry_at = now + timedelta(seconds=30)
    inbox.record_failure(session, pk, "RetryLater: not yet", at=now, retry_at=retry_at)

    def due_at(moment):
        return inbox.due_for_sweep(session, now=moment, grace_seconds=GRACE)

    assert due_at(now) == []
    assert due_at(retry_at + timedelta(seconds=GRACE - 1)) == []
    assert due_at(retry_at + timedelta(seconds=GRACE + 1)) == [pk]
