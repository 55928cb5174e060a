"""Refunds: credits taken back once, matched through the payment's PaymentIntent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared import processing
from shared.errors import RetryLater
from shared.models import Payment
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import (
    DAY,
    StripeSubscription,
    balance,
    current_shapes_only,
    event_status,
    ledger_entries,
    only,
    package_checkout,
    run,
    store,
)


def test_full_refund_reverses_the_package_credits_once(seeded, now, t0):
    intent, obj = package_checkout(at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    charge = se.charge(payment_intent=intent, amount=2999, amount_refunded=2999)

    run(seeded, se.event("charge.refunded", charge, created=t0 + DAY), now)
    run(seeded, se.event("charge.refunded", charge, created=t0 + DAY), now)  # the same refund, told twice

    assert balance(seeded) == 0
    assert [e.amount for e in ledger_entries(seeded)] == [2_000, -2_000]
    payment = only(seeded, Payment)
    assert (payment.status, payment.amount_refunded_cents) == ("refunded", 2999)


def test_partial_then_full_refund_reverses_cumulatively_once(seeded, now, t0):
    intent, obj = package_checkout(package_id="enterprise", amount=14999, at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    charge_id = se.unique("ch")

    partial = se.charge(payment_intent=intent, amount=14999, amount_refunded=5000, charge_id=charge_id)
    run(seeded, se.event("charge.refunded", partial, created=t0 + DAY), now)
    assert only(seeded, Payment).status == "partially_refunded"
    assert balance(seeded) == 15_000 - 15_000 * 5000 // 14999

    full = se.charge(payment_intent=intent, amount=14999, amount_refunded=14999, charge_id=charge_id)
    run(seeded, se.event("charge.refunded", full, created=t0 + 2 * DAY), now)
    run(seeded, se.event("charge.refunded", partial, created=t0 + DAY), now)  # a late copy of the first

    assert balance(seeded) == 0
    assert only(seeded, Payment).status == "refunded"
    assert len(ledger_entries(seeded)) == 3


def test_refund_of_a_subscription_invoice_reverses_the_plan_credits_the_checkout_granted(seeded, now, t0):
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create", payment_intent=intent), now)

    run(seeded, se.event("charge.refunded", se.charge(payment_intent=intent, amount=19900, amount_refunded=19900)), now)

    assert balance(seeded) == 0


@current_shapes_only
@pytest.mark.parametrize("link_first", [False, True], ids=["invoice-first", "link-first"])
def test_refund_of_a_renewal_is_matched_through_invoice_payment_paid(seeded, now, t0, link_first):
    # Webhook invoices do not name their PaymentIntent; invoice_payment.paid links the two.
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    renewal = sub.invoice(reason="subscription_cycle", period=1)
    invoice_id = renewal["data"]["object"]["id"]
    intent = se.unique("pi")
    link = se.event(
        "invoice_payment.paid",
        se.invoice_payment(invoice_id=invoice_id, payment_intent=intent, amount=19900),
        created=renewal["created"],
    )
    if link_first:
        with pytest.raises(RetryLater):
            run(seeded, link, now)
    run(seeded, renewal, now)
    if link_first:
        processing.process_event(seeded, store(seeded, link, now), clock=lambda: now)
    else:
        run(seeded, link, now)
    assert balance(seeded) == 2 * 12_000

    run(seeded, se.event("charge.refunded", se.charge(payment_intent=intent, amount=19900, amount_refunded=19900)), now)

    assert balance(seeded) == 12_000


@current_shapes_only
def test_invoice_payment_paid_for_a_checkout_invoice_needs_no_link(seeded, now, t0):
    intent, obj = package_checkout(at=t0)
    obj["invoice"] = se.unique("in")
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)

    link = se.invoice_payment(invoice_id=obj["invoice"], payment_intent=intent, amount=2999)
    result = run(seeded, se.event("invoice_payment.paid", link, created=t0), now)

    assert result.outcome == processing.DONE
    assert only(seeded, Payment).provider_charge_ref == intent


def test_refund_before_its_payment_is_known_retries_later_then_succeeds(seeded, now, t0):
    intent, obj = package_checkout(at=t0)
    refund = se.event(
        "charge.refunded", se.charge(payment_intent=intent, amount=2999, amount_refunded=2999), created=t0 + DAY
    )
    refund_pk = store(seeded, refund, now)

    with pytest.raises(RetryLater) as raised:
        processing.process_event(seeded, refund_pk, clock=lambda: now)
    assert processing.is_transient(raised.value)
    processing.record_failure(seeded, refund_pk, raised.value, at=now, retry_at=now + timedelta(seconds=5))

    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    result = processing.process_event(seeded, refund_pk, clock=lambda: now)

    assert result.outcome == processing.DONE
    assert balance(seeded) == 0
    assert event_status(seeded, refund) == "succeeded"
