"""Recording: an event is stored once per provider and event id; unhandled types are kept, ignored."""

from __future__ import annotations

from datetime import timedelta

from shared import inbox
from shared.models import WebhookEvent
from tests.factories.inbox import record

GRACE = 60


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
