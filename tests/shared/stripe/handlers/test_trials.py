"""Trials: a trial's start grants no plan credits and activates nothing billed; the first paid
invoice after it grants the first period; trial_will_end emails once per trial."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.errors import PermanentError
from shared.models import EmailOutbox, Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import ACCOUNT, DAY, StripeSubscription, balance, run

TRIAL_DAYS = 14


def trial_subscription(t0: int) -> StripeSubscription:
    sub = StripeSubscription(t0)
    sub.metadata = {**sub.metadata, "trial_days": str(TRIAL_DAYS)}
    return sub


def trial_checkout(sub: StripeSubscription) -> dict:
    obj = se.checkout_session(
        account_id=ACCOUNT,
        mode="subscription",
        plan_id=sub.plan_id,
        customer=sub.customer,
        subscription=sub.id,
        payment_status="no_payment_required",
    )
    obj["metadata"]["trial_days"] = str(TRIAL_DAYS)
    return se.event("checkout.session.completed", obj, created=sub.t0)


def trial_invoice(sub: StripeSubscription) -> dict:
    """Stripe's first invoice of a trial: billing_reason subscription_create, amount 0."""
    obj = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id=sub.price_id,
        amount=0,
        period_start=sub.t0,
        period_end=sub.t0 + TRIAL_DAYS * DAY,
        billing_reason="subscription_create",
        metadata=sub.metadata,
    )
    return se.event("invoice.paid", obj, created=sub.t0 + 1)


def first_paid_invoice(sub: StripeSubscription) -> dict:
    start = sub.t0 + TRIAL_DAYS * DAY
    obj = se.invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id=sub.price_id,
        amount=19900,
        period_start=start,
        period_end=start + 30 * DAY,
        billing_reason="subscription_cycle",
        metadata=sub.metadata,
    )
    return se.event("invoice.paid", obj, created=start + 1)


def trial_will_end(sub: StripeSubscription, *, trial_end: int, at: int) -> dict:
    obj = se.subscription(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id=sub.price_id,
        status="trialing",
        period_start=sub.t0,
        period_end=trial_end,
        metadata=sub.metadata,
    )
    obj["trial_end"] = trial_end
    return se.event("customer.subscription.trial_will_end", obj, created=at)


def emails(seeded, template: str) -> list[EmailOutbox]:
    with seeded() as session:
        return list(session.scalars(select(EmailOutbox).filter_by(template=template)))


def status(seeded) -> str:
    with seeded() as session:
        return session.scalars(select(Subscription.status)).one()


@pytest.mark.parametrize("order", ["checkout_first", "invoice_first"])
def test_a_trials_start_is_trialing_and_grants_no_credits_in_either_order(seeded, now, t0, order):
    sub = trial_subscription(t0)
    events = [trial_checkout(sub), trial_invoice(sub)]
    if order == "invoice_first":
        events.reverse()
    for evt in events + events:  # duplicates too
        run(seeded, evt, now)

    assert status(seeded) == "trialing"
    assert balance(seeded) == 0
    assert emails(seeded, "payment_confirmation") == []


def test_the_first_paid_invoice_after_the_trial_grants_the_first_period_once(seeded, now, t0):
    sub = trial_subscription(t0)
    run(seeded, trial_checkout(sub), now)
    run(seeded, trial_invoice(sub), now)
    paid = first_paid_invoice(sub)
    run(seeded, paid, now)
    run(seeded, paid, now)

    assert status(seeded) == "active"
    assert balance(seeded) == 12_000  # the growth plan's credits, once


def test_a_free_first_invoice_without_a_trial_still_grants(seeded, now, t0):
    """A 100% coupon is not a trial: the plan was bought, and its credits are granted."""
    sub = StripeSubscription(t0)
    obj = trial_invoice(sub)
    run(seeded, obj, now)

    assert balance(seeded) == 12_000


def test_trial_will_end_emails_once_per_trial(seeded, now, t0):
    sub = trial_subscription(t0)
    run(seeded, trial_checkout(sub), now)
    end = t0 + TRIAL_DAYS * DAY
    warning = trial_will_end(sub, trial_end=end, at=end - 3 * DAY)
    run(seeded, warning, now)
    run(seeded, warning, now)
    run(seeded, trial_will_end(sub, trial_end=end, at=end - 3 * DAY + 60), now)  # another delivery, same trial

    [email] = emails(seeded, "trial_ending")
    assert email.context["plan_name"] == "Growth"
    assert email.context["trial_end"]


def test_trial_will_end_without_trial_end_fails_loudly(seeded, now, t0):
    sub = trial_subscription(t0)
    evt = trial_will_end(sub, trial_end=t0 + DAY, at=t0)
    evt["data"]["object"]["trial_end"] = None
    with pytest.raises(PermanentError):
        run(seeded, evt, now)
