"""Manual payments on SQLite: a pending payment with an open invoice, decided once by an operator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared import credentials
from shared.billing import ledger, manual_payments
from shared.billing.checkout import NotFound, SubscriptionConflict
from shared.models import EmailOutbox, Invoice, ManualPayment, Payment, Subscription
from shared.outcome import Outcome

ACCOUNT = "acct_manual"
INSTRUCTIONS = "IBAN DE00 1234, reference your invoice number"


@pytest.fixture
def store(seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "manual", config={"instructions": INSTRUCTIONS})
        from shared.billing.accounts import ensure_account

        ensure_account(session, ACCOUNT, email="ada@example.com", name="Ada")
    return seeded


def request(store, now, *, key="req-1", plan_id=None, package_id="starter", method="bank_transfer"):
    with store.begin() as session:
        done = manual_payments.request_manual_payment(
            session,
            Outcome(),
            account_id=ACCOUNT,
            plan_id=plan_id,
            package_id=None if plan_id else package_id,
            method=method,
            reference="TRANSFER-77",
            request_key=f"{ACCOUNT}:{key}",
            requested_by="api",
            at=now,
        )
        return done.payment.provider_payment_id, done.created


def decide(store, now, pid, *, approve=True, actor="ops:eve", reason=None):
    with store.begin() as session:
        return manual_payments.decide(session, Outcome(), pid, approve=approve, actor=actor, reason=reason, at=now)


def balance(store) -> int:
    with store() as session:
        return ledger.balance(session, ACCOUNT)


def emails(store, template: str) -> int:
    with store() as session:
        return session.scalar(select(func.count()).select_from(EmailOutbox).filter_by(template=template))


def test_request_is_pending_with_an_open_numbered_invoice_carrying_the_instructions(store, now):
    pid, created = request(store, now)

    assert created
    with store() as session:
        payment = session.scalars(select(Payment).filter_by(provider_payment_id=pid)).one()
        invoice = session.scalars(select(Invoice).filter_by(payment_id=payment.id)).one()
    assert (payment.provider, payment.status, payment.amount_cents) == ("manual", "pending", 999)
    assert invoice.status == "open" and invoice.number.startswith(f"{now:%Y}-")
    assert invoice.notes == INSTRUCTIONS
    assert balance(store) == 0


def test_a_retried_request_is_the_same_payment(store, now):
    first, _ = request(store, now)
    again, created = request(store, now)

    assert again == first and not created
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 1


def test_without_the_manual_provider_manual_payments_are_off(seeded, now):
    with seeded.begin() as session:
        from shared.billing.accounts import ensure_account

        ensure_account(session, ACCOUNT)
    with pytest.raises(manual_payments.ManualPaymentsOff):
        request(seeded, now)


def test_approval_grants_the_package_once_and_records_who_and_when(store, now):
    pid, _ = request(store, now)

    first = decide(store, now + timedelta(hours=1), pid)
    second = decide(store, now + timedelta(hours=2), pid)

    assert first.decided_now and not second.decided_now
    assert balance(store) == 500
    assert emails(store, "payment_approved") == 1
    with store() as session:
        manual = session.scalars(select(ManualPayment)).one()
        invoice = session.scalars(select(Invoice)).one()
    assert (manual.decided_by, manual.decided_at) == ("ops:eve", now + timedelta(hours=1))
    assert invoice.status == "paid"


def test_rejection_grants_nothing_and_a_later_approval_cannot_undo_it(store, now):
    pid, _ = request(store, now)

    decide(store, now, pid, approve=False, reason="no transfer arrived")
    late = decide(store, now, pid, approve=True)

    assert not late.decided_now and late.payment.status == "rejected"
    assert balance(store) == 0
    assert emails(store, "payment_rejected") == 1 and emails(store, "payment_approved") == 0
    with store() as session:
        assert session.scalars(select(Invoice)).one().status == "void"
        assert session.scalars(select(ManualPayment)).one().decision_reason == "no transfer arrived"


def test_approved_plan_activates_one_period_and_grants_its_credits(store, now):
    pid, _ = request(store, now, plan_id="growth")

    decide(store, now, pid)

    with store() as session:
        sub = session.scalars(select(Subscription)).one()
    assert (sub.provider, sub.provider_subscription_id, sub.status) == ("manual", f"manual:{ACCOUNT}", "active")
    assert sub.plan_id == "growth"
    assert sub.current_period_end == manual_payments.add_interval(now, "month")
    assert balance(store) == 12_000


def test_a_second_approved_period_follows_the_first_and_the_end_lapses_to_canceled(store, now):
    first, _ = request(store, now, key="p1", plan_id="starter")
    decide(store, now, first)
    second, _ = request(store, now + timedelta(days=20), key="p2", plan_id="starter")
    decide(store, now + timedelta(days=20), second)
    first_end = manual_payments.add_interval(now, "month")

    with store.begin() as session:
        assert manual_payments.lapse_ended_periods(session, Outcome(), now=first_end + timedelta(days=1)) == []
    with store() as session:
        sub = session.scalars(select(Subscription)).one()
    assert sub.current_period_end == manual_payments.add_interval(first_end, "month")
    assert balance(store) == 10_000

    with store.begin() as session:
        assert manual_payments.lapse_ended_periods(session, Outcome(), now=sub.current_period_end) == [ACCOUNT]
        assert manual_payments.lapse_ended_periods(session, Outcome(), now=sub.current_period_end) == []
    with store() as session:
        assert session.scalars(select(Subscription)).one().status == "canceled"


def test_plan_request_is_refused_while_a_provider_subscription_is_live(store, now):
    with store.begin() as session:
        session.add(
            Subscription(account_id=ACCOUNT, provider="stripe", provider_subscription_id="sub_1", status="active")
        )
    with pytest.raises(SubscriptionConflict):
        request(store, now, plan_id="growth")


def test_unknown_payment_cannot_be_decided(store, now):
    with pytest.raises(NotFound):
        decide(store, now, "mp_nope")


def test_month_from_the_31st_ends_on_the_months_last_day(now):
    assert manual_payments.add_interval(now.replace(month=1, day=31), "month").day == 28


def test_an_interval_back_crosses_the_year_and_keeps_the_months_last_day(now):
    assert manual_payments.add_interval(now.replace(month=3, day=31), "month", -1) == now.replace(month=2, day=28)
    assert manual_payments.add_interval(now.replace(month=1, day=15), "month", -1) == now.replace(
        year=now.year - 1, month=12, day=15
    )
    assert manual_payments.add_interval(now, "week", -1) == now - timedelta(weeks=1)
