"""Payments: recorded once, invoiced with a number once, refunds reverse credits cumulatively."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.billing import ledger, payments
from shared.billing.accounts import ensure_account
from shared.models import Invoice, Payment
from shared.outcome import Outcome


@pytest.fixture
def account(session):
    return ensure_account(session, "acct_pay").id


def record(account_id: str, provider_payment_id: str = "cs_1", **fields) -> payments.PaymentRecord:
    values = dict(
        account_id=account_id,
        provider="stripe",
        provider_payment_id=provider_payment_id,
        provider_charge_ref="pi_" + provider_payment_id,
        kind="credit_package",
        amount_cents=2999,
        currency="USD",
        package_id="value",
        line_items=[{"description": "Value credit package", "amount_cents": 2999, "quantity": 1}],
    )
    values.update(fields)
    return payments.PaymentRecord(**values)


def paid_with_credits(session, account, now, credits: int = 2000, amount: int = 2999) -> Payment:
    payment, _ = payments.record_payment(session, Outcome(), record(account, amount_cents=amount), at=now)
    payment.credits_granted = credits
    ledger.grant_credits(
        session,
        Outcome(),
        account_id=account,
        credits=credits,
        kind=ledger.GRANT_PURCHASE,
        description="grant",
        idempotency_key="grant:" + payment.provider_payment_id,
        at=now,
        payment_id=payment.id,
    )
    return payment


def test_a_payment_is_recorded_once_with_one_numbered_invoice(session, account, now):
    first, created = payments.record_payment(session, Outcome(), record(account), at=now)
    again, created_again = payments.record_payment(session, Outcome(), record(account), at=now + timedelta(minutes=1))

    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert first.currency == "usd"
    [invoice] = session.query(Invoice).all()
    assert invoice.number == f"{now:%Y}-000001"  # the year's first
    assert (invoice.payment_id, invoice.amount_cents, invoice.provider) == (first.id, 2999, "stripe")


def test_invoice_numbers_are_unique_and_increasing(session, account, now):
    for n in range(3):
        payments.record_payment(session, Outcome(), record(account, f"cs_{n}"), at=now)

    numbers = [i.number for i in session.query(Invoice).order_by(Invoice.id)]
    assert numbers == sorted(set(numbers))
    assert len(numbers) == 3


def test_a_failed_payment_gets_no_invoice(session, account, now):
    payments.record_payment(
        session, Outcome(), record(account, status=payments.FAILED, failure_message="declined"), at=now
    )

    assert session.query(Invoice).count() == 0
    assert session.query(Payment).one().status == "failed"


def test_a_later_charge_reference_is_filled_in(session, account, now):
    payments.record_payment(session, Outcome(), record(account, provider_charge_ref=None), at=now)
    payments.record_payment(session, Outcome(), record(account, provider_charge_ref="pi_late"), at=now)

    assert payments.find_payment_by_charge_ref(session, "stripe", "pi_late") is not None


def test_a_full_refund_reverses_all_granted_credits_once(session, account, now):
    payment = paid_with_credits(session, account, now)

    reversed_now = payments.apply_refund(
        session, Outcome(), payment, amount_refunded_cents=2999, idempotency_key="r:1", at=now
    )
    again = payments.apply_refund(
        session, Outcome(), payment, amount_refunded_cents=2999, idempotency_key="r:2", at=now
    )

    assert (reversed_now, again) == (2000, 0)
    assert ledger.balance(session, account) == 0
    assert (payment.status, payment.amount_refunded_cents) == ("refunded", 2999)


def test_partial_refunds_reverse_the_refunded_share_cumulatively(session, account, now):
    payment = paid_with_credits(session, account, now, credits=1000, amount=1000)

    assert (
        payments.apply_refund(session, Outcome(), payment, amount_refunded_cents=250, idempotency_key="r:250", at=now)
        == 250
    )
    assert payment.status == "partially_refunded"
    assert (
        payments.apply_refund(session, Outcome(), payment, amount_refunded_cents=600, idempotency_key="r:600", at=now)
        == 350
    )
    # an older, smaller cumulative amount arriving late changes nothing
    assert (
        payments.apply_refund(session, Outcome(), payment, amount_refunded_cents=250, idempotency_key="r:250b", at=now)
        == 0
    )
    assert (
        payments.apply_refund(session, Outcome(), payment, amount_refunded_cents=1000, idempotency_key="r:1000", at=now)
        == 400
    )

    assert ledger.balance(session, account) == 0
    assert payment.status == "refunded"


def test_a_refund_larger_than_the_payment_reverses_no_more_than_was_granted(session, account, now):
    payment = paid_with_credits(session, account, now, credits=500, amount=999)

    payments.apply_refund(session, Outcome(), payment, amount_refunded_cents=5000, idempotency_key="r:big", at=now)

    assert ledger.balance(session, account) == 0
    assert payment.amount_refunded_cents == 999
