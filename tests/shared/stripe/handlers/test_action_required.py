"""invoice.payment_action_required: one email with the hosted invoice link per invoice; the
subscription's status is left as Stripe's subscription events set it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.errors import PermanentError
from shared.models import EmailOutbox, Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import DAY, StripeSubscription, run


def action_required(sub: StripeSubscription, *, at: int, invoice_id: str | None = None) -> dict:
    obj = se.action_required_invoice(
        subscription_id=sub.id,
        customer=sub.customer,
        price_id=sub.price_id,
        amount=19900,
        period_start=sub.t0,
        metadata=sub.metadata,
    )
    if invoice_id:
        obj["id"] = invoice_id
        obj["hosted_invoice_url"] = f"https://invoice.stripe.com/i/acct_test/{invoice_id}"
    return se.event("invoice.payment_action_required", obj, created=at)


def outbox(seeded) -> list[EmailOutbox]:
    with seeded() as session:
        return list(session.scalars(select(EmailOutbox).filter_by(template="payment_action_required")))


def test_action_required_emails_the_hosted_invoice_once_per_invoice(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    first = action_required(sub, at=t0 + DAY)
    invoice_id = first["data"]["object"]["id"]
    retry = action_required(sub, at=t0 + 2 * DAY, invoice_id=invoice_id)  # Stripe asks again

    for evt in (first, first, retry):
        run(seeded, evt, now)

    [email] = outbox(seeded)
    assert email.context["action_url"] == f"https://invoice.stripe.com/i/acct_test/{invoice_id}"
    assert email.context["description"] == "Growth plan"


def test_action_required_leaves_the_subscription_status_alone(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    with seeded() as session:
        before = session.scalars(select(Subscription)).one().status

    run(seeded, action_required(sub, at=t0 + DAY), now)

    with seeded() as session:
        assert session.scalars(select(Subscription)).one().status == before


def test_action_required_before_the_checkout_still_emails_once(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = action_required(sub, at=t0)
    run(seeded, evt, now)  # the account comes from the invoice's subscription metadata
    run(seeded, sub.checkout_completed(at=t0 + 1), now)
    run(seeded, evt, now)

    assert len(outbox(seeded)) == 1


def test_action_required_without_a_hosted_link_fails_loudly(seeded, now, t0):
    sub = StripeSubscription(t0)
    evt = action_required(sub, at=t0)
    del evt["data"]["object"]["hosted_invoice_url"]
    with pytest.raises(PermanentError):
        run(seeded, evt, now)
