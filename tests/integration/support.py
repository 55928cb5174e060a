"""Plain helpers for the integration tests: polling, storing and reading inbox events."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import WebhookEvent
from tests.factories import stripe_events as se

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, message: str = "") -> T:
    """Poll until `predicate()` is truthy and return its value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate!r}")
        time.sleep(interval)


def event_row(session_factory: sessionmaker[Session], event_id: str, provider: str = "stripe") -> WebhookEvent | None:
    with session_factory() as session:
        return session.scalars(select(WebhookEvent).filter_by(provider=provider, event_id=event_id)).one_or_none()


def event_status(session_factory: sessionmaker[Session], event_id: str, provider: str = "stripe") -> str | None:
    row = event_row(session_factory, event_id, provider)
    return row.status if row else None


def all_succeeded(session_factory: sessionmaker[Session], event_ids: list[str], provider: str = "stripe") -> bool:
    with session_factory() as session:
        done = session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.provider == provider, WebhookEvent.event_id.in_(event_ids))
            .where(WebhookEvent.status == "succeeded")
        )
    return done == len(set(event_ids))


# -- Stripe event builders for whole flows (from the factories' fixture shapes) ----------------

GROWTH_PRICE = "price_billhook_growth_monthly"
SCALE_PRICE = "price_billhook_scale_monthly"
MONTH = 30 * 24 * 3600


def subscription_start(account_id: str, *, created: int, plan_id: str = "growth", price: str = GROWTH_PRICE):
    """The two events that start a subscription: checkout.session.completed and the first
    invoice.paid (billing_reason subscription_create). Returns (checkout_evt, invoice_evt, ids)."""
    customer, subscription_id = se.unique("cus"), se.unique("sub")
    checkout = se.event(
        "checkout.session.completed",
        se.checkout_session(
            account_id=account_id, mode="subscription", plan_id=plan_id, customer=customer, subscription=subscription_id
        ),
        created=created,
    )
    invoice = se.event(
        "invoice.paid",
        se.invoice(
            subscription_id=subscription_id,
            customer=customer,
            price_id=price,
            amount=19900,
            period_start=created,
            period_end=created + MONTH,
            billing_reason="subscription_create",
            metadata={"account_id": account_id, "plan_id": plan_id},
            payment_intent=se.unique("pi"),
        ),
        created=created + 1,
    )
    return checkout, invoice, {"customer": customer, "subscription": subscription_id}


def renewal(ids: dict, account_id: str, *, period_start: int, created: int, price: str = GROWTH_PRICE) -> dict:
    return se.event(
        "invoice.paid",
        se.invoice(
            subscription_id=ids["subscription"],
            customer=ids["customer"],
            price_id=price,
            amount=19900,
            period_start=period_start,
            period_end=period_start + MONTH,
            billing_reason="subscription_cycle",
            metadata={"account_id": account_id},
            payment_intent=se.unique("pi"),
        ),
        created=created,
    )


def subscription_updated(
    ids: dict,
    account_id: str,
    *,
    created: int,
    period_start: int,
    price: str = GROWTH_PRICE,
    status: str = "active",
    cancel_at_period_end: bool = False,
) -> dict:
    return se.event(
        "customer.subscription.updated",
        se.subscription(
            subscription_id=ids["subscription"],
            customer=ids["customer"],
            price_id=price,
            status=status,
            period_start=period_start,
            period_end=period_start + MONTH,
            cancel_at_period_end=cancel_at_period_end,
            metadata={"account_id": account_id},
        ),
        created=created,
    )


def post_all(live_web, events: list[dict], copies: int = 1) -> None:
    """Post every Stripe event `copies` times, four at a time (concurrent duplicates); all 200."""
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(live_web.post_event, [e for e in events for _ in range(copies)]))
    assert {r.status_code for r in responses} == {200}


def wait_handled(session_factory: sessionmaker[Session], events: list[dict]) -> None:
    """Wait until every one of `events` has succeeded."""
    ids = [e["id"] for e in events]
    wait_for(lambda: all_succeeded(session_factory, ids), 30, message=f"events {ids} succeeded")
