"""Subscriptions v1: activation, sales, status changes, sale refunds and their emails, once each."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared import processing
from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.errors import RetryLater
from shared.models import Account, CreditLedgerEntry, Invoice, Payment, Subscription
from tests.shared.paypal.handlers.support import (
    ACCOUNT,
    GROWTH_CREDITS,
    activated,
    balance,
    count,
    credit_notes,
    email,
    emails,
    only,
    run,
    sale_event,
    sale_refund_event,
    status_event,
)


def test_activation_makes_the_subscription_active_and_grants_first_period_once(seeded, now):
    evt = activated(now)
    run(seeded, evt, now)
    run(seeded, activated(now, created=now + timedelta(seconds=5)), now)  # a second activation event

    sub = only(seeded, Subscription)
    assert (sub.provider, sub.provider_subscription_id, sub.account_id) == ("paypal", "I-SUB1", ACCOUNT)
    assert (sub.status, sub.plan_id) == ("active", "growth")
    assert sub.current_period_end == now + timedelta(days=30)
    assert balance(seeded) == GROWTH_CREDITS


def test_first_sale_pays_the_activated_period_and_renewals_grant_each_period_once(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    renewal = sale_event(now + timedelta(days=30))

    run(seeded, first, now)
    run(seeded, renewal, now + timedelta(days=30))
    run(seeded, renewal, now + timedelta(days=30))

    assert balance(seeded) == 2 * GROWTH_CREDITS
    with seeded() as session:
        paid = list(session.scalars(select(Payment).order_by(Payment.id)))
        assert [p.provider_payment_id for p in paid] == [first["resource"]["id"], renewal["resource"]["id"]]
        assert [p.amount_cents for p in paid] == [19900, 19900]
        initial = ledger.entry_by_key(session, "paypal:subscription:I-SUB1:initial")
        assert initial.payment_id == paid[0].id  # so a refund of the first sale finds its credits
    assert count(seeded, Invoice) == 2


def test_sale_before_activation_waits_and_then_grants_nothing_extra(seeded, now):
    first = sale_event(now + timedelta(seconds=10))
    with pytest.raises(RetryLater):
        run(seeded, first, now)
    run(seeded, activated(now), now)
    run(seeded, first, now)  # the retry

    assert balance(seeded) == GROWTH_CREDITS
    assert count(seeded, Payment) == 1


def test_cancellation_arriving_before_activation_stays_cancelled(seeded, now):
    cancelled_at = now + timedelta(days=3)
    run(seeded, status_event("BILLING.SUBSCRIPTION.CANCELLED", now, cancelled_at), now)
    run(seeded, activated(now), now)  # older, delivered late

    sub = only(seeded, Subscription)
    assert sub.status == "canceled" and sub.canceled_at == cancelled_at
    assert balance(seeded) == GROWTH_CREDITS  # the activated period was paid for


def test_reactivation_after_suspension_is_active_and_grants_nothing_new(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, status_event("BILLING.SUBSCRIPTION.SUSPENDED", now, now + timedelta(days=2)), now)
    run(seeded, activated(now, created=now + timedelta(days=3)), now)

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == GROWTH_CREDITS


def test_suspension_delivered_after_a_newer_reactivation_is_ignored(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, activated(now, created=now + timedelta(days=3)), now)
    run(seeded, status_event("BILLING.SUBSCRIPTION.SUSPENDED", now, now + timedelta(days=2)), now)

    assert only(seeded, Subscription).status == "active"


def test_subscription_event_names_its_account_from_custom_id(seeded, now):
    run(seeded, activated(now, sub_id="I-OTHER"), now)
    with seeded() as session:
        assert session.scalars(select(CreditLedgerEntry.account_id)).all() == [ACCOUNT]


def test_sale_that_is_not_a_subscription_payment_is_left_alone(seeded, now):
    evt = sale_event(now)
    del evt["resource"]["billing_agreement_id"]
    assert run(seeded, evt, now).outcome == processing.DONE
    assert count(seeded, Payment) == 0


def test_activation_emails_once_however_often_the_subscription_activates(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, activated(now, created=now + timedelta(seconds=5)), now)
    run(seeded, status_event("BILLING.SUBSCRIPTION.SUSPENDED", now, now + timedelta(days=2)), now)
    run(seeded, activated(now, created=now + timedelta(days=3)), now)  # reactivated

    assert emails(seeded) == Counter({"subscription_activated": 1})
    sent = email(seeded, "subscription_activated")
    assert sent.idempotency_key == "email:subscription_activated:paypal:I-SUB1"
    assert sent.context["credits"] == GROWTH_CREDITS
    assert sent.context["period_end"] == (now + timedelta(days=30)).date().isoformat()


def test_an_activation_delivered_after_its_cancellation_sends_no_activation_email(seeded, now):
    run(seeded, status_event("BILLING.SUBSCRIPTION.CANCELLED", now, now + timedelta(days=3)), now)
    run(seeded, activated(now), now)

    assert emails(seeded) == Counter()


def test_activation_remembers_the_subscribers_address_only_when_none_is_known(seeded, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_known", email="known@example.com")
    run(seeded, activated(now), now)
    other = activated(now, sub_id="I-KNOWN")
    other["resource"]["custom_id"] = "acct_known:growth"
    run(seeded, other, now)

    with seeded() as session:
        assert session.get(Account, ACCOUNT).email == "customer@example.com"
        assert session.get(Account, "acct_known").email == "known@example.com"


def test_the_first_sale_is_confirmed_and_each_renewal_emails_once(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    renewal = sale_event(now + timedelta(days=30))

    for evt in (first, first, renewal, renewal, {**renewal, "id": "WH-RENEWAL-AGAIN"}):
        run(seeded, evt, now + timedelta(days=30))

    assert emails(seeded) == Counter(
        {"subscription_activated": 1, "payment_confirmation": 1, "subscription_renewal": 1}
    )
    renewed = email(seeded, "subscription_renewal")
    assert renewed.idempotency_key == f"email:subscription_renewal:paypal:{renewal['resource']['id']}"
    assert (renewed.context["amount_cents"], renewed.context["credits"]) == (19900, GROWTH_CREDITS)


def test_a_sale_refund_reverses_the_periods_credits_once_with_one_email(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    run(seeded, first, now)
    refunded = sale_refund_event(first, now + timedelta(days=1))

    run(seeded, refunded, now)
    run(seeded, refunded, now)
    run(seeded, {**refunded, "id": "WH-SALE-REFUND-AGAIN"}, now)

    assert balance(seeded) == 0
    payment = only(seeded, Payment)
    assert (payment.status, payment.amount_refunded_cents) == ("refunded", 19900)
    assert emails(seeded)["refund_notification"] == 1 and emails(seeded)["low_credits"] == 1
    assert email(seeded, "refund_notification").context["credits_reversed"] == GROWTH_CREDITS
    assert credit_notes(seeded) == [(only(seeded, Invoice).number, "refund", 19900)]


def test_a_partial_sale_refund_reverses_its_share_of_a_renewal(seeded, now):
    run(seeded, activated(now), now)
    renewal = sale_event(now + timedelta(days=30))
    run(seeded, renewal, now + timedelta(days=30))

    run(seeded, sale_refund_event(renewal, now + timedelta(days=31), amount=9950), now + timedelta(days=31))

    assert balance(seeded) == 2 * GROWTH_CREDITS - GROWTH_CREDITS // 2
    with seeded() as session:
        refunded = session.scalars(select(Payment).filter_by(provider_payment_id=renewal["resource"]["id"])).one()
        assert (refunded.status, refunded.amount_refunded_cents) == ("partially_refunded", 9950)


def test_a_sale_refund_before_its_sale_waits_then_reverses(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    refunded = sale_refund_event(first, now + timedelta(days=1))

    with pytest.raises(RetryLater):
        run(seeded, refunded, now)
    run(seeded, first, now)
    run(seeded, refunded, now)  # the retry

    assert balance(seeded) == 0
    assert emails(seeded)["refund_notification"] == 1


def test_a_sale_refund_without_its_amount_total_counts_this_refund(seeded, now):
    run(seeded, activated(now), now)
    first = sale_event(now + timedelta(seconds=30))
    run(seeded, first, now)
    refunded = sale_refund_event(first, now + timedelta(days=1), amount=19900)
    del refunded["resource"]["total_refunded_amount"]
    del refunded["resource"]["sale_id"]  # the sale link names it too

    run(seeded, refunded, now)

    assert balance(seeded) == 0
