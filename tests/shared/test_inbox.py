"""The durable inbox: stored once, requeued on demand, found by the sweeper when it should be queued."""

from __future__ import annotations

from datetime import timedelta

from shared import event_ops, inbox
from shared.models import WebhookEvent
from tests.factories import stripe_events as se

GRACE = 60


def record(session, now, *, event_type: str = "invoice.paid", handled: bool = True, event_id: str | None = None):
    evt = se.event(event_type, {"object": "invoice"}, event_id=event_id)
    return inbox.record_event(
        session,
        provider="stripe",
        event_id=evt["id"],
        type=evt["type"],
        payload=evt,
        event_created_at=now,
        handled=handled,
        at=now,
    )


def test_an_event_is_stored_once_per_provider_and_event_id(session, now):
    first = record(session, now, event_id="evt_same")
    again = record(session, now + timedelta(seconds=1), event_id="evt_same")

    assert first.new and not again.new
    assert again.id == first.id
    assert session.query(WebhookEvent).count() == 1


def test_the_same_event_id_from_another_provider_is_another_event(session, now):
    record(session, now, event_id="evt_same")
    other = inbox.record_event(
        session,
        provider="paypal",
        event_id="evt_same",
        type="PAYMENT.CAPTURE.COMPLETED",
        payload={},
        event_created_at=None,
        handled=True,
        at=now,
    )

    assert other.new


def test_unhandled_types_are_stored_ignored(session, now):
    stored = record(session, now, event_type="customer.tax_id.created", handled=False)

    assert stored.status == "ignored"
    assert inbox.counts_by_status(session) == {"ignored": 1}


def test_replay_makes_a_failed_event_received_again(session, now):
    pk = record(session, now).id
    inbox.record_failure(session, pk, "PermanentError: nope", at=now, retry_at=None)

    assert event_ops.reset_for_replay(session, pk, at=now + timedelta(hours=1)) is True

    event = session.get(WebhookEvent, pk)
    assert (event.status, event.next_attempt_at, event.attempts) == ("received", None, 1)


def test_replay_refuses_done_and_missing_events(session, now):
    pk = record(session, now).id
    inbox.mark_succeeded(session.get(WebhookEvent, pk), at=now)
    ignored_pk = record(session, now, handled=False).id

    assert event_ops.reset_for_replay(session, pk, at=now) is False
    assert event_ops.reset_for_replay(session, ignored_pk, at=now) is False
    assert event_ops.reset_for_replay(session, 999_999, at=now) is False
    assert session.get(WebhookEvent, pk).status == "succeeded"


def test_due_for_sweep_picks_received_events_older_than_the_grace(session, now):
    stale = record(session, now - timedelta(seconds=GRACE + 1)).id
    fresh = record(session, now - timedelta(seconds=GRACE - 1)).id

    due = inbox.due_for_sweep(session, now=now, grace_seconds=GRACE)

    assert stale in due
    assert fresh not in due


def test_claim_counts_the_attempt_and_loads_the_event_unless_it_is_done(session, now):
    pk = record(session, now - timedelta(hours=1)).id

    event = inbox.claim(session, pk, at=now)

    assert (event.id, event.attempts, event.status, event.updated_at) == (pk, 1, "received", now)
    assert event.payload["type"] == "invoice.paid"
    inbox.mark_succeeded(event, at=now)
    assert inbox.claim(session, pk, at=now) is None
    assert inbox.claim(session, 999_999, at=now) is None


def test_due_for_sweep_skips_done_failed_and_ignored_events(session, now):
    long_ago = now - timedelta(days=1)
    done = record(session, long_ago).id
    inbox.mark_succeeded(session.get(WebhookEvent, done), at=long_ago)
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
    inbox.mark_succeeded(session.get(WebhookEvent, pk), at=now)

    inbox.record_failure(session, pk, "TimeoutError: late", at=now, retry_at=None)

    event = session.get(WebhookEvent, pk)
    assert (event.status, event.last_error) == ("succeeded", None)
