"""What the PayPal handler tests share: events stored in the inbox and run as the worker runs
them (`processing.process_event`, a fixed clock), and the builders of their events."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from shared import processing
from shared.billing import ledger
from shared.errors import PermanentError
from shared.models import CreditNote, EmailOutbox, Invoice, Payment, Subscription, WebhookEvent
from tests.factories import paypal_events as pe
from tests.factories.inbox import store_event

ACCOUNT = "acct_pp"
STARTER_PRICE, STARTER_CREDITS = 999, 500  # the seed's "starter" credit package
GROWTH_CREDITS = 12_000  # the seed's "growth" plan, PayPal plan P-BILLHOOK-GROWTH


def store(session_factory, evt: dict, now: datetime) -> int:
    return store_event(session_factory, evt, at=now)


def run(session_factory, evt: dict, now: datetime) -> processing.Result:
    return processing.process_event(session_factory, store(session_factory, evt, now), clock=lambda: now)


def balance(session_factory, account_id: str = ACCOUNT) -> int:
    with session_factory() as session:
        return ledger.balance(session, account_id)


def count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def credit_notes(session_factory) -> list[tuple[str, str, int]]:
    """(invoice number, reason, amount) of every credit note, in the order issued."""
    with session_factory() as session:
        stmt = select(Invoice.number, CreditNote.reason, CreditNote.amount_cents).join(
            Invoice, Invoice.id == CreditNote.invoice_id
        )
        return [tuple(row) for row in session.execute(stmt.order_by(CreditNote.id))]


def only(session_factory, model):
    with session_factory() as session:
        return session.scalars(select(model)).one()


def capture_event(order_id: str, *, status: str = "COMPLETED", amount: int = STARTER_PRICE, **kwargs) -> dict:
    event_type = {"COMPLETED": "PAYMENT.CAPTURE.COMPLETED", "DECLINED": "PAYMENT.CAPTURE.DENIED"}[status]
    resource = pe.capture(
        order_id=order_id, account_id=ACCOUNT, package_id="starter", amount_cents=amount, status=status, **kwargs
    )
    return pe.event(event_type, resource)


# -- orders and captures ----------------------------------------------------------------------


def mismatches() -> float:
    return REGISTRY.get_sample_value("billhook_payment_mismatch_total", {"provider": "paypal"}) or 0.0


@pytest.mark.parametrize(
    ("value", "currency", "got"),
    [
        (None, "USD", "no amount USD"),
        ("abc", "USD", "'abc' USD"),
        ("NaN", "USD", "'NaN' USD"),
        ("Infinity", "USD", "'Infinity' USD"),
        ("-9.99", "USD", "'-9.99' USD"),
        ("9.99e0", "USD", "'9.99e0' USD"),
        (9.99, "USD", "9.99 USD"),
        ("0.01", "USD", "'0.01' USD"),
        ("99.90", "USD", "'99.90' USD"),
        ("9.99", "EUR", "'9.99' EUR"),
        ("9.99", None, "'9.99' in no readable currency"),
    ],
)
def test_a_capture_not_paying_the_orders_amount_fails_loudly_and_grants_nothing(seeded, now, value, currency, got):
    evt = capture_event("ORDER6")
    amount = evt["resource"]["amount"]
    if value is None:
        del amount["value"]
    else:
        amount["value"] = value
    amount["currency_code"] = currency
    pk = store(seeded, evt, now)
    counted = mismatches()

    with pytest.raises(PermanentError) as raised:
        processing.process_event(seeded, pk, clock=lambda: now)
    processing.record_failure(seeded, pk, raised.value, at=now, retry_at=None)  # as the worker does

    assert not processing.is_transient(raised.value)
    with seeded() as session:
        event = session.get(WebhookEvent, pk)
    assert event.status == "failed"
    assert f"captured {got}, expected 9.99 USD for package 'starter'" in event.last_error
    assert mismatches() == counted + 1
    assert balance(seeded) == 0
    assert count(seeded, Payment) == 0


# -- refunds ----------------------------------------------------------------------------------


# -- subscriptions ----------------------------------------------------------------------------


def activated(start: datetime, *, sub_id: str = "I-SUB1", created: datetime | None = None) -> dict:
    resource = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=sub_id,
        start_time=start,
        next_billing_time=start + timedelta(days=30),
    )
    return pe.event("BILLING.SUBSCRIPTION.ACTIVATED", resource, created=created or start)


def status_event(event_type: str, start: datetime, at: datetime, *, sub_id: str = "I-SUB1") -> dict:
    resource = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=sub_id,
        status=event_type.rsplit(".", 1)[-1],
        start_time=start,
        status_update_time=at,
    )
    return pe.event(event_type, resource, created=at)


def sale_event(at: datetime, *, sub_id: str = "I-SUB1", sale_id: str | None = None) -> dict:
    return pe.event(
        "PAYMENT.SALE.COMPLETED",
        pe.sale(subscription_id=sub_id, amount_cents=19900, created=at, sale_id=sale_id),
        created=at,
    )


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("BILLING.SUBSCRIPTION.CANCELLED", "canceled"),
        ("BILLING.SUBSCRIPTION.EXPIRED", "canceled"),
        ("BILLING.SUBSCRIPTION.SUSPENDED", "paused"),
    ],
)
def test_status_events_change_the_status_once(seeded, now, event_type, status):
    run(seeded, activated(now), now)
    evt = status_event(event_type, now, now + timedelta(days=2))
    run(seeded, evt, now)
    run(seeded, evt, now)

    assert only(seeded, Subscription).status == status
    assert balance(seeded) == GROWTH_CREDITS


# -- emails -----------------------------------------------------------------------------------


def emails(session_factory) -> Counter:
    with session_factory() as session:
        return Counter(row.template for row in session.scalars(select(EmailOutbox)))


def email(session_factory, template: str) -> EmailOutbox:
    with session_factory() as session:
        return session.scalars(select(EmailOutbox).filter_by(template=template)).one()


def sale_refund_event(sale: dict, at: datetime, *, amount: int = 19900, total: int | None = None) -> dict:
    refund = pe.sale_refund(sale_id=sale["resource"]["id"], amount_cents=amount, total_refunded_cents=total, created=at)
    return pe.event("PAYMENT.SALE.REFUNDED", refund, created=at)
