"""Claiming a run and recording how it ended."""

from __future__ import annotations

from datetime import timedelta

from shared import inbox
from shared.models import WebhookEvent
from tests.factories.inbox import record

GRACE = 60


def test_claim_loads_the_event_and_its_mark_counts_the_attempt_unless_it_is_done(session, now):
    pk = record(session, now - timedelta(hours=1)).id

    event = inbox.lock_event(session, pk)

    assert (event.id, event.attempts, event.status) == (pk, 0, "received")
    assert inbox.claimed(event)
    assert event.payload["type"] == "invoice.paid"
    inbox.mark_succeeded(session, event, at=now)
    assert (event.attempts, event.status, event.updated_at, event.processed_at) == (1, "succeeded", now, now)
    assert not inbox.claimed(inbox.lock_event(session, pk))
    assert inbox.lock_event(session, 999_999) is None


def test_an_unhandled_type_is_marked_ignored_with_its_attempt(session, now):
    pk = record(session, now - timedelta(hours=1)).id
    event = inbox.lock_event(session, pk)

    inbox.mark_ignored(session, event, at=now)

    assert (event.attempts, event.status, event.updated_at) == (1, "ignored", now)
    assert not inbox.claimed(inbox.lock_event(session, pk))


def test_record_failure_with_a_retry_time_keeps_the_event_waiting(session, now):
    pk = record(session, now).id

    inbox.record_failure(session, pk, "RetryLater: no payment yet", at=now, retry_at=now + timedelta(seconds=8))

    event = session.get(WebhookEvent, pk)
    assert (event.status, event.next_attempt_at) == ("received", now + timedelta(seconds=8))
    assert event.last_error == "RetryLater: no payment yet"


def test_record_failure_without_a_retry_time_dead_letters_the_event(session, now):
    pk = record(session, now).id

    inbox.record_failure(session, pk, "x" * 10_000, at=now, retry_at=None)

    event = session.get(WebhookEvent, pk)
    assert (event.status, event.next_attempt_at) == ("failed", None)
    assert len(event.last_error) == 4000


def test_record_failure_never_undoes_a_success(session, now):
    pk = record(session, now).id
    inbox.mark_succeeded(session, session.get(WebhookEvent, pk), at=now)

    inbox.record_failure(session, pk, "TimeoutError: late", at=now, retry_at=None)

    event = session.get(WebhookEvent, pk)
    assert (event.status, event.last_error) == ("succeeded", None)
