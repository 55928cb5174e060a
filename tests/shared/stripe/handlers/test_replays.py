"""Replays and duplicates: a replayed or re-sent event has no new effects."""

from __future__ import annotations

from datetime import timedelta

from shared import event_ops, processing
from shared.models import Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import (
    StripeSubscription,
    balance,
    count,
    ledger_entries,
    run,
    store,
)


def test_replaying_a_succeeded_event_has_no_new_effects(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.checkout_completed()
    pk = store(seeded, evt, now)
    processing.process_event(seeded, pk, clock=lambda: now)

    again = processing.process_event(seeded, pk, clock=lambda: now + timedelta(hours=1))
    with seeded.begin() as session:
        assert event_ops.reset_for_replay(session, pk, at=now) is False  # `billhook events replay` refuses it too

    assert again.outcome == processing.ALREADY_DONE
    assert balance(seeded) == 12_000
    assert count(seeded, Subscription) == 1


def test_the_same_checkout_under_a_new_event_id_grants_nothing_new(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.checkout_completed()
    run(seeded, evt, now)

    resent = se.event(evt["type"], evt["data"]["object"], created=evt["created"])
    run(seeded, resent, now)

    assert balance(seeded) == 12_000
    assert [e.kind for e in ledger_entries(seeded)] == ["subscription_grant"]
