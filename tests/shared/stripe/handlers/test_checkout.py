"""Checkout Sessions: subscription activation and credit package purchases, in both eras' shapes."""

from __future__ import annotations

import pytest

from shared import processing
from shared.errors import PermanentError
from shared.models import Account, Invoice, Payment, Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import (
    ACCOUNT,
    StripeSubscription,
    balance,
    count,
    event_status,
    only,
    package_checkout,
    run,
)


def test_subscription_checkout_activates_the_subscription_and_grants_plan_credits(seeded, now, t0):
    sub = StripeSubscription(t0)

    result = run(seeded, sub.checkout_completed(), now)

    assert (result.outcome, result.account_id) == (processing.DONE, ACCOUNT)
    subscription = only(seeded, Subscription)
    assert (subscription.account_id, subscription.provider_subscription_id) == (ACCOUNT, sub.id)
    assert (subscription.status, subscription.plan_id) == ("active", "growth")
    assert balance(seeded) == 12_000
    account = only(seeded, Account)
    assert (account.email, account.stripe_customer_id) == ("buyer@example.com", sub.customer)


def test_a_subscription_checkout_whose_first_payment_is_pending_activates_only_when_its_invoice_is_paid(
    seeded, now, t0
):
    sub = StripeSubscription(t0)
    pending = sub.checkout_completed()
    pending["data"]["object"]["payment_status"] = "unpaid"

    run(seeded, pending, now)

    subscription = only(seeded, Subscription)
    assert (subscription.status, subscription.plan_id) == ("incomplete", "growth")
    assert balance(seeded) == 0

    run(seeded, sub.invoice(reason="subscription_create", at=t0 + 3 * 86_400), now)

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == 12_000


def test_paid_package_checkout_grants_credits_and_records_payment_and_numbered_invoice(seeded, now, t0):
    intent, obj = package_checkout(at=t0)

    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)

    assert balance(seeded) == 2_000
    payment = only(seeded, Payment)
    assert (payment.status, payment.amount_cents, payment.currency) == ("succeeded", 2999, "usd")
    assert (payment.kind, payment.package_id, payment.credits_granted) == ("credit_package", "value", 2_000)
    assert payment.provider_charge_ref == intent
    invoice = only(seeded, Invoice)
    assert invoice.payment_id == payment.id
    assert invoice.number == f"{now:%Y}-000001"  # the year's first
    assert invoice.amount_cents == 2999
    assert invoice.line_items[0]["description"].startswith("Value credit package")


def test_unpaid_package_checkout_grants_nothing_until_async_payment_succeeded(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)

    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    assert balance(seeded) == 0
    assert count(seeded, Payment) == 0

    obj["payment_status"] = "paid"
    run(seeded, se.event("checkout.session.async_payment_succeeded", obj, created=t0 + 60), now)

    assert balance(seeded) == 2_000
    assert only(seeded, Payment).status == "succeeded"
    assert count(seeded, Invoice) == 1


def test_async_payment_failed_records_a_failed_payment_and_grants_nothing(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)
    run(seeded, se.event("checkout.session.completed", obj, created=t0), now)

    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 60), now)

    payment = only(seeded, Payment)
    assert (payment.status, payment.credits_granted) == ("failed", 0)
    assert payment.failure_message
    assert balance(seeded) == 0
    assert count(seeded, Invoice) == 0


def test_a_late_failure_notice_after_success_changes_nothing(seeded, now, t0):
    _, obj = package_checkout(payment_status="paid", at=t0)
    run(seeded, se.event("checkout.session.async_payment_succeeded", obj, created=t0 + 60), now)

    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 30), now)

    assert only(seeded, Payment).status == "succeeded"
    assert balance(seeded) == 2_000


def test_success_after_a_recorded_failure_grants_credits_and_issues_the_invoice(seeded, now, t0):
    _, obj = package_checkout(payment_status="unpaid", at=t0)
    run(seeded, se.event("checkout.session.async_payment_failed", obj, created=t0 + 30), now)

    obj["payment_status"] = "paid"
    run(seeded, se.event("checkout.session.async_payment_succeeded", obj, created=t0 + 60), now)

    payment = only(seeded, Payment)
    assert (payment.status, payment.failure_message, payment.credits_granted) == ("succeeded", None, 2_000)
    assert only(seeded, Invoice).payment_id == payment.id
    assert balance(seeded) == 2_000


def test_checkout_naming_no_account_is_a_permanent_error(seeded, now, t0):
    obj = se.checkout_session(account_id="ignored", mode="payment", package_id="value")
    obj["metadata"].pop("account_id")
    obj["client_reference_id"] = None
    evt = se.event("checkout.session.completed", obj, created=t0)

    with pytest.raises(PermanentError) as raised:
        run(seeded, evt, now)

    assert not processing.is_transient(raised.value)  # the task dead-letters it without retrying
    assert count(seeded, Account) == 0
    assert event_status(seeded, evt) == "received"  # rolled back: the task records the failure around it


def test_checkout_for_an_unknown_package_is_a_permanent_error(seeded, now, t0):
    _, obj = package_checkout(package_id="no_such_package", at=t0)

    with pytest.raises(PermanentError):
        run(seeded, se.event("checkout.session.completed", obj, created=t0), now)
    assert balance(seeded) == 0
