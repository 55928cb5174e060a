"""Outgoing events are written by the billing changes themselves: one per change, in its
transaction, none for a duplicated provider event, with a gapless sequence per account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared.billing import lapses, ledger
from shared.models import OutgoingDelivery, OutgoingEvent, Subscription
from shared.outcome import Outcome
from shared.outgoing import endpoints
from shared.outgoing import events as outgoing_events_module
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import ACCOUNT, DAY, StripeSubscription, run
from tests.statements import Statements


def outgoing_events(session_factory, account_id: str = ACCOUNT) -> list[OutgoingEvent]:
    with session_factory() as session:
        stmt = select(OutgoingEvent).filter_by(account_id=account_id).order_by(OutgoingEvent.sequence)
        return list(session.scalars(stmt))


def types(session_factory) -> list[str]:
    return [e.type for e in outgoing_events(session_factory)]


def test_a_subscription_checkout_tells_activation_payment_and_credits_once(seeded, now):
    t0 = int(now.timestamp())
    sub = StripeSubscription(t0)
    checkout = sub.checkout_completed()
    invoice = sub.invoice(reason="subscription_create")
    run(seeded, checkout, now)
    run(seeded, invoice, now)
    # the same checkout and invoice again under new event ids: nothing new to tell
    for evt in (checkout, invoice):
        run(seeded, se.event(evt["type"], evt["data"]["object"], created=evt["created"]), now)

    assert types(seeded) == ["subscription.activated", "credits.granted", "payment.succeeded"]
    events = outgoing_events(seeded)
    assert [e.sequence for e in events] == [1, 2, 3]
    activated = events[0].body
    assert set(activated) == {"id", "type", "version", "created", "account_id", "sequence", "data"}
    assert activated["data"]["subscription"]["status"] == "active"
    assert activated["data"]["billing"]["entitled"] is True
    assert activated["data"]["billing"]["plan_id"] == "growth"
    assert "email" not in str(activated) and "name" not in activated["data"]["billing"]


def test_renewal_failure_cancel_and_refund_each_write_their_event(seeded, now):
    t0 = int(now.timestamp())
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create", payment_intent=intent), now)
    run(seeded, sub.invoice(reason="subscription_cycle", period=1), now)
    run(seeded, sub.invoice("invoice.payment_failed", reason="subscription_cycle", period=2, status="open"), now)
    run(seeded, sub.updated(at=t0 + 61 * DAY, status="active", cancel_at_period_end=True), now)
    run(seeded, sub.updated(at=t0 + 62 * DAY, event_type="customer.subscription.deleted", status="canceled"), now)
    charge = se.charge(payment_intent=intent, amount=19900, amount_refunded=19900)
    run(seeded, se.event("charge.refunded", charge, created=t0 + 63 * DAY), now)
    run(seeded, se.event("charge.refunded", charge, created=t0 + 63 * DAY), now)  # told twice

    assert types(seeded) == [
        "subscription.activated",
        "credits.granted",
        "payment.succeeded",
        "payment.succeeded",
        "credits.granted",
        "subscription.past_due",
        "payment.failed",
        "subscription.updated",
        "subscription.canceled",
        "payment.refunded",
        "credits.reversed",
    ]
    events = outgoing_events(seeded)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[7].body["data"]["previous"] == {"status": "past_due", "cancel_at_period_end": False}
    assert events[8].body["data"]["billing"]["entitled"] is False


def test_every_subscribed_endpoint_gets_a_delivery_reported_on_the_outcome(seeded, now):
    with seeded.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/a", allow_private=True, at=now)
        endpoints.add_endpoint(session, "http://127.0.0.1:9/b", allow_private=True, at=now, event_types=["credits.low"])
    sub = StripeSubscription(int(now.timestamp()))

    result = run(seeded, sub.checkout_completed(), now)

    assert len(result.deliveries) == 2  # activated and credits.granted, to the endpoint taking all types
    with seeded() as session:
        assert sorted(session.scalars(select(OutgoingDelivery.id))) == sorted(result.deliveries)


def test_a_batch_reads_the_endpoints_once_and_every_event_gets_its_delivery(seeded, now):
    with seeded.begin() as session:
        endpoints.add_endpoint(session, "http://127.0.0.1:9/a", allow_private=True, at=now)

    def purchase(account_id: str) -> dict:
        obj = se.checkout_session(account_id=account_id, mode="payment", package_id="starter")
        return se.event("checkout.session.completed", obj)

    with Statements(seeded) as statements:
        with outgoing_events_module.endpoints_read_once():  # as a batch message runs its events
            results = [run(seeded, purchase(account), now) for account in ("acct_b1", "acct_b2")]
        outside = run(seeded, purchase("acct_b3"), now)

    assert [len(r.deliveries) for r in results] == [2, 2]  # payment.succeeded and credits.granted, each
    assert len(outside.deliveries) == 2
    # Once for the batch of two transactions, once for the one outside it.
    assert len(statements.reading("outgoing_endpoints")) == 2


def test_a_debit_below_the_threshold_tells_debited_and_low_once(seeded, now):
    run(seeded, StripeSubscription(int(now.timestamp())).checkout_completed(), now)
    with seeded.begin() as session:
        debit = ledger.debit_credits(
            session, Outcome(), account_id=ACCOUNT, amount=11_950, description="usage", idempotency_key="d1", at=now
        )
        from shared.billing import notifications
        from shared.models import Account

        notifications.low_credits_if_crossed(
            session,
            Outcome(),
            session.get(Account, ACCOUNT),
            before=debit.balance_before,
            after=debit.balance_after,
            cause_key="d1",
            at=now,
        )
    with seeded.begin() as session:  # the same debit again: a replay
        ledger.debit_credits(
            session, Outcome(), account_id=ACCOUNT, amount=11_950, description="usage", idempotency_key="d1", at=now
        )

    assert types(seeded)[-2:] == ["credits.debited", "credits.low"]
    assert outgoing_events(seeded)[-1].body["data"]["billing"]["balance"] == 50


def test_a_past_due_grace_ends_in_one_lapse(seeded, now):
    t0 = int(now.timestamp())
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    failed = sub.invoice("invoice.payment_failed", reason="subscription_cycle", period=1, status="open")
    run(seeded, failed, now)
    past_due_since = datetime.fromtimestamp(failed["created"], UTC)

    lapses.lapse_past_due(seeded, now=past_due_since + timedelta(days=6))
    assert "subscription.lapsed" not in types(seeded)
    later = past_due_since + timedelta(days=7, seconds=1)
    lapses.lapse_past_due(seeded, now=later)
    lapses.lapse_past_due(seeded, now=later + timedelta(hours=1))

    assert types(seeded).count("subscription.lapsed") == 1
    lapsed = outgoing_events(seeded)[-1].body
    assert lapsed["data"]["billing"]["entitled"] is False
    with seeded() as session:
        assert session.scalars(select(Subscription)).one().lapsed_at == later
