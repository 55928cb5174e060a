"""Which emails the Stripe handlers queue, and that a duplicate or replayed event queues none."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from shared.billing.accounts import ensure_account
from shared.email.render import render
from shared.models import Account, EmailOutbox
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import ACCOUNT, DAY, StripeSubscription, package_checkout, run


def outbox_rows(session_factory) -> list[EmailOutbox]:
    with session_factory() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def templates(session_factory) -> list[str]:
    return [row.template for row in outbox_rows(session_factory)]


def test_credit_purchase_queues_one_confirmation_and_hands_its_id_to_the_task(seeded, now, t0):
    _, obj = package_checkout(at=t0)
    evt = se.event("checkout.session.completed", obj, created=t0)

    result = run(seeded, evt, now)
    duplicate = run(
        seeded, se.event("checkout.session.completed", obj, created=t0), now
    )  # a new event id, same session

    [row] = outbox_rows(seeded)
    assert result.emails == (row.id,) and duplicate.emails == ()
    assert (row.template, row.recipient, row.account_id) == ("payment_confirmation", "buyer@example.com", ACCOUNT)
    assert row.context["amount_cents"] == 2999 and row.context["credits"] == 2_000
    assert re.fullmatch(r"\d{4}-\d{6}", row.context["invoice_number"])
    assert "$29.99" in render(row.template, row.context).text


def test_subscription_start_queues_activation_and_confirmation_once_in_either_order(seeded, now, t0):
    sub = StripeSubscription(t0)
    first_invoice = sub.invoice(reason="subscription_create")

    run(seeded, first_invoice, now)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.invoice(reason="subscription_create", invoice_id=first_invoice["data"]["object"]["id"]), now)

    assert sorted(templates(seeded)) == ["payment_confirmation", "subscription_activated"]
    rows = {r.template: r for r in outbox_rows(seeded)}
    assert rows["subscription_activated"].context["plan_name"] == "Growth"
    assert rows["payment_confirmation"].context["amount_cents"] == 19900


def test_an_invoice_before_the_checkout_gets_its_address_from_the_account_later(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.invoice(reason="subscription_create"), now)
    assert {r.recipient for r in outbox_rows(seeded)} == {""}  # the send task reads the address then

    run(seeded, sub.checkout_completed(), now)
    with seeded() as session:
        assert session.get(Account, ACCOUNT).email == "buyer@example.com"


def test_renewal_queues_one_renewal_email_per_period(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    renewal = sub.invoice(reason="subscription_cycle", period=1)

    run(seeded, renewal, now)
    run(seeded, se.event("invoice.payment_succeeded", renewal["data"]["object"], created=renewal["created"]), now)
    run(seeded, sub.invoice(reason="subscription_cycle", period=2), now)

    assert templates(seeded) == ["subscription_activated", "subscription_renewal", "subscription_renewal"]
    renewal_row = outbox_rows(seeded)[1]
    assert renewal_row.context["credits"] == 12_000 and renewal_row.context["period_end"]


def test_payment_failed_is_sent_once_per_invoice_however_often_it_fails(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    invoice_id = se.unique("in")
    for attempt in range(3):
        failed = sub.invoice(
            "invoice.payment_failed", reason="subscription_cycle", period=1, invoice_id=invoice_id, status="open"
        )
        run(seeded, se.event(failed["type"], failed["data"]["object"], created=t0 + DAY * (30 + attempt)), now)

    assert templates(seeded) == ["subscription_activated", "payment_failed"]
    row = outbox_rows(seeded)[1]
    assert (row.context["amount_cents"], row.context["description"]) == (19900, "Growth plan")


def test_a_late_failure_notice_for_a_paid_invoice_sends_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    invoice_id = se.unique("in")
    run(seeded, sub.invoice(reason="subscription_cycle", period=1, invoice_id=invoice_id), now)
    late = sub.invoice("invoice.payment_failed", reason="subscription_cycle", period=1, invoice_id=invoice_id)

    run(seeded, se.event(late["type"], late["data"]["object"], created=t0 + 29 * DAY), now)

    assert "payment_failed" not in templates(seeded)


def test_async_checkout_failure_queues_payment_failed(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 60), now)
    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 60), now)

    assert templates(seeded) == ["payment_failed"]


def test_each_refund_level_is_told_once(seeded, now, t0):
    intent, obj = package_checkout(package_id="enterprise", amount=14999, at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    charge_id = se.unique("ch")
    partial = se.charge(payment_intent=intent, amount=14999, amount_refunded=5000, charge_id=charge_id)
    full = se.charge(payment_intent=intent, amount=14999, amount_refunded=14999, charge_id=charge_id)

    run(seeded, se.event("charge.refunded", partial, created=t0 + DAY), now)
    run(seeded, se.event("charge.refunded", full, created=t0 + 2 * DAY), now)
    run(seeded, se.event("charge.refunded", partial, created=t0 + DAY), now)  # a late copy of the first
    run(seeded, se.event("charge.refunded", full, created=t0 + 2 * DAY), now)  # and of the second

    refunds = [r for r in outbox_rows(seeded) if r.template == "refund_notification"]
    assert [r.context["amount_cents"] for r in refunds] == [5000, 9999]
    assert refunds[0].context["credits_reversed"] == 15_000 * 5000 // 14999


@pytest.mark.parametrize("threshold, expected", [(100, ["low_credits"]), (0, [])])
def test_a_refund_that_takes_the_balance_below_the_threshold_warns_once(seeded, now, t0, threshold, expected):
    with seeded.begin() as session:
        ensure_account(session, ACCOUNT).low_credits_threshold = threshold
    intent, obj = package_checkout(at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    refund = se.charge(payment_intent=intent, amount=2999, amount_refunded=2999)

    run(seeded, se.event("charge.refunded", refund, created=t0 + DAY), now)
    run(seeded, se.event("charge.refunded", refund, created=t0 + DAY), now)

    low = [r for r in outbox_rows(seeded) if r.template == "low_credits"]
    assert [r.template for r in low] == expected
    if low:
        assert (low[0].context["balance"], low[0].context["threshold"]) == (0, 100)
