"""Invoices: one period of plan credits each, prorations, failures, in both eras' shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared import processing
from shared.billing import subscriptions
from shared.billing.subscriptions import SubscriptionStatus
from shared.errors import RetryLater
from shared.models import Invoice, Payment, Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import (
    ACCOUNT,
    DAY,
    StripeSubscription,
    balance,
    count,
    ledger_entries,
    only,
    run,
)


def test_invoice_paid_and_payment_succeeded_for_one_invoice_grant_credits_once(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    renewal_id = se.unique("in")

    run(seeded, sub.invoice("invoice.paid", reason="subscription_cycle", period=1, invoice_id=renewal_id), now)
    run(
        seeded,
        sub.invoice("invoice.payment_succeeded", reason="subscription_cycle", period=1, invoice_id=renewal_id),
        now,
    )

    assert balance(seeded) == 2 * 12_000
    with seeded() as session:
        assert session.scalars(select(Payment).filter_by(provider_payment_id=renewal_id)).one()
        assert len(session.scalars(select(Invoice).filter_by(provider_invoice_id=renewal_id)).all()) == 1


@pytest.mark.parametrize("checkout_first", [True, False], ids=["checkout-first", "invoice-first"])
def test_checkout_and_first_invoice_grant_plan_credits_once_in_either_order(seeded, now, t0, checkout_first):
    sub = StripeSubscription(t0)
    intent = se.unique("pi")
    events = [sub.checkout_completed(), sub.invoice(reason="subscription_create", payment_intent=intent)]
    if not checkout_first:
        events.reverse()

    for evt in events:
        run(seeded, evt, now)

    assert balance(seeded) == 12_000
    [grant] = ledger_entries(seeded)
    payment = only(seeded, Payment)
    assert grant.payment_id == payment.id  # so a refund of the first invoice finds the grant
    assert payment.credits_granted == 12_000
    assert only(seeded, Subscription).status == "active"


def test_renewal_invoice_grants_another_period_of_credits_once(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create"), now)
    renewal = sub.invoice(reason="subscription_cycle", period=1)

    run(seeded, renewal, now)
    run(seeded, se.event("invoice.paid", renewal["data"]["object"], created=renewal["created"]), now)

    assert balance(seeded) == 2 * 12_000
    subscription = only(seeded, Subscription)
    assert subscription.current_period_start == datetime.fromtimestamp(t0 + 30 * DAY, UTC)
    assert subscription.current_period_end == datetime.fromtimestamp(t0 + 60 * DAY, UTC)


def test_proration_invoice_records_the_payment_without_a_new_period_of_credits(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    run(seeded, sub.invoice(reason="subscription_create"), now)
    # An upgrade invoiced at once: the proration spans from the change to the period's end.
    proration = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=5000,
        period_start=t0 + DAY,
        period_end=t0 + 30 * DAY,
        billing_reason="subscription_update",
        metadata=sub.metadata,
        proration=True,
    )

    run(seeded, se.event("invoice.paid", proration, created=t0 + DAY), now)

    assert balance(seeded) == 12_000
    assert count(seeded, Payment) == 2
    subscription = only(seeded, Subscription)
    assert subscription.current_period_start == datetime.fromtimestamp(t0, UTC)  # the period goes on


def test_plan_change_that_restarts_the_billing_cycle_grants_the_new_periods_credits_once(seeded, now, t0):
    # Growth -> scale with a new billing cycle from the change on (Stripe restarts it when the
    # interval changes): the update invoice credits the unused growth time (a proration line) and
    # charges a whole scale period (a full line), which is a new period of the new plan's credits.
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create"), now)
    changed_at = t0 + 10 * DAY
    obj = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=39900,
        period_start=changed_at,
        period_end=changed_at + 30 * DAY,
        billing_reason="subscription_update",
        metadata={"account_id": ACCOUNT, "plan_id": "scale"},
    )
    se.add_line(  # the proration first: the whole period's line must still be found
        obj,
        price_id=sub.price_id,
        amount=-13300,
        period_start=changed_at,
        period_end=t0 + 30 * DAY,
        proration=True,
        first=True,
    )
    update = se.event("invoice.paid", obj, created=changed_at + 1)

    run(seeded, update, now)
    run(seeded, se.event("invoice.paid", obj, created=changed_at + 1), now)  # delivered again, new event id

    assert balance(seeded) == 12_000 + 20_000
    subscription = only(seeded, Subscription)
    assert (subscription.plan_id, subscription.current_period_start) == (
        "scale",
        datetime.fromtimestamp(changed_at, UTC),
    )
    with seeded() as session:
        payment = session.scalars(select(Payment).filter_by(provider_payment_id=obj["id"])).one()
        assert payment.credits_granted == 20_000  # what a refund of it would take back

    renewal = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=39900,
        period_start=changed_at + 30 * DAY,
        period_end=changed_at + 60 * DAY,
        metadata={"account_id": ACCOUNT, "plan_id": "scale"},
    )
    run(seeded, se.event("invoice.paid", renewal, created=changed_at + 30 * DAY + 1), now)
    assert balance(seeded) == 12_000 + 2 * 20_000


def test_invoice_payment_failed_makes_the_subscription_past_due(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    run(seeded, sub.invoice("invoice.payment_failed", reason="subscription_cycle", period=1, status="open"), now)

    assert only(seeded, Subscription).status == "past_due"
    assert balance(seeded) == 12_000


def test_a_failed_first_invoice_leaves_the_subscription_incomplete_and_not_live(seeded, now, t0):
    # Stripe keeps a subscription whose first payment is declined `incomplete`: it never paid.
    sub = StripeSubscription(t0)
    run(seeded, sub.updated(at=t0, event_type="customer.subscription.created", status="incomplete"), now)

    run(seeded, sub.invoice("invoice.payment_failed", reason="subscription_create", status="open", at=t0 + 1), now)

    subscription = only(seeded, Subscription)
    assert subscription.status == SubscriptionStatus.INCOMPLETE
    assert subscription.status not in subscriptions.LIVE_STATUSES
    with seeded() as session:
        assert subscriptions.current_subscription(session, ACCOUNT).status == "incomplete"
    assert balance(seeded) == 0


def test_invoice_for_a_subscription_nobody_is_known_for_retries_later(seeded, now, t0):
    sub = StripeSubscription(t0)
    sub.metadata = {}

    with pytest.raises(RetryLater):
        run(seeded, sub.invoice(reason="subscription_create"), now)
    assert count(seeded, Subscription) == 0


def test_an_invoice_outside_any_subscription_changes_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    obj = se.invoice(
        subscription_id=None, customer=sub.customer, price_id=sub.price_id, amount=500, period_start=t0, period_end=t0
    )
    obj["billing_reason"] = "manual"
    evt = se.event("invoice.paid", obj, created=t0)

    assert run(seeded, evt, now).outcome == processing.DONE
    assert count(seeded, Payment) == count(seeded, Subscription) == 0


def test_a_coupons_discount_is_recorded_on_the_subscription_payments_invoice(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = sub.invoice()
    obj = evt["data"]["object"]
    obj["total_discount_amounts"] = [{"amount": 4000, "discount": "di_test"}]
    obj["amount_paid"] = 15900

    run(seeded, evt, now)

    with seeded() as session:
        invoice = session.scalars(select(Invoice)).one()
    assert invoice.line_items[-1] == {"description": "Discount", "amount_cents": -4000, "quantity": 1}
    assert sum(line["amount_cents"] for line in invoice.line_items) == invoice.amount_cents == 15900


def test_a_proration_invoice_newer_than_the_upgrade_leaves_the_new_plan(seeded, now, t0):
    """A proration invoice names no whole period's price; the checkout's metadata on it still
    says the plan the subscription began on, which must not undo the upgrade."""
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create"), now)
    run(seeded, sub.updated(at=t0 + DAY, price_id="price_billhook_scale_monthly"), now)
    proration = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id="price_billhook_scale_monthly",
        amount=5000,
        period_start=t0 + DAY,
        period_end=t0 + 30 * DAY,
        billing_reason="subscription_update",
        metadata=sub.metadata,  # plan_id: growth, from the checkout
        proration=True,
    )

    run(seeded, se.event("invoice.paid", proration, created=t0 + DAY + 60), now)

    assert only(seeded, Subscription).plan_id == "scale"
