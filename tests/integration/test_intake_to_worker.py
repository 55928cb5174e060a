"""Signed events over real HTTP, through the Redis broker, handled by a real Celery worker on
PostgreSQL: effects land once, whatever the duplication or order of delivery."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from shared.billing import ledger
from shared.models import CreditLedgerEntry, Invoice, Payment, Subscription, WebhookEvent
from tests.factories import stripe_events as se
from tests.integration import support

pytestmark = pytest.mark.redis  # on PostgreSQL; on SQLite where it is missing (not in CI)


def _count(session, model, **filters) -> int:
    return session.scalar(select(func.count()).select_from(model).filter_by(**filters))


def _wait_succeeded(factory, events, timeout=20.0):
    ids = [e["id"] for e in events]
    support.wait_for(lambda: support.all_succeeded(factory, ids), timeout, message=f"events {ids} succeeded")


def test_signed_events_over_http_are_processed_by_a_worker_with_their_effects(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings, concurrency=2)
    checkout, first_invoice, ids = support.subscription_start("acct_http", created=int(time.time()) - 60)
    purchase = se.event(
        "checkout.session.completed",
        se.checkout_session(account_id="acct_http", mode="payment", package_id="starter", amount_total=999),
    )
    for evt in (checkout, first_invoice, purchase):
        response = live_web.post_event(evt)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "duplicate": False, "status": "received"}

    _wait_succeeded(store_session_factory, [checkout, first_invoice, purchase])
    with store_session_factory() as session:
        assert ledger.balance(session, "acct_http") == 12_000 + 500
        sub = session.scalars(select(Subscription)).one()
        assert (sub.provider_subscription_id, sub.status, sub.plan_id) == (ids["subscription"], "active", "growth")
        assert sub.current_period_end is not None
        assert _count(session, Payment, account_id="acct_http", status="succeeded") == 2
        numbers = session.scalars(select(Invoice.number).filter_by(account_id="acct_http")).all()
        assert len(numbers) == 2 and all(n and re.fullmatch(r"\d{4}-\d{6}", n) for n in numbers)
        assert {e.attempts for e in session.scalars(select(WebhookEvent))} == {1}


def test_same_event_posted_five_times_concurrently_grants_credits_once(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings, concurrency=2)
    purchase = se.event(
        "checkout.session.completed",
        se.checkout_session(account_id="acct_dup", mode="payment", package_id="value", amount_total=2999),
    )
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: live_web.post_event(purchase), range(5)))

    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True, True]
    _wait_succeeded(store_session_factory, [purchase])
    with store_session_factory() as session:
        assert _count(session, WebhookEvent) == 1
        assert ledger.balance(session, "acct_dup") == 2_000
        assert _count(session, CreditLedgerEntry, account_id="acct_dup") == 1
        assert _count(session, Payment, account_id="acct_dup") == 1
        assert _count(session, Invoice, account_id="acct_dup") == 1


def test_subscription_updates_arriving_newest_first_end_in_the_newest_state(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings, concurrency=1)
    t0 = int(time.time()) - 3600
    ids = {"customer": se.unique("cus"), "subscription": se.unique("sub")}
    older = support.subscription_updated(ids, "acct_order", created=t0, period_start=t0)
    newer = support.subscription_updated(
        ids,
        "acct_order",
        created=t0 + 600,
        period_start=t0 + 300,
        price=support.SCALE_PRICE,
        cancel_at_period_end=True,
    )

    assert live_web.post_event(newer).status_code == 200
    _wait_succeeded(store_session_factory, [newer])
    assert live_web.post_event(older).status_code == 200
    _wait_succeeded(store_session_factory, [older])

    with store_session_factory() as session:
        sub = session.scalars(select(Subscription)).one()
        assert (sub.plan_id, sub.cancel_at_period_end, sub.last_event_id) == ("scale", True, newer["id"])
        assert sub.current_period_start == datetime.fromtimestamp(t0 + 300, UTC)


def test_first_invoice_before_its_checkout_grants_the_plan_credits_once(
    store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings, concurrency=1)
    checkout, first_invoice, ids = support.subscription_start("acct_inv_first", created=int(time.time()) - 60)

    assert live_web.post_event(first_invoice).status_code == 200
    _wait_succeeded(store_session_factory, [first_invoice])
    assert live_web.post_event(checkout).status_code == 200
    _wait_succeeded(store_session_factory, [checkout])

    with store_session_factory() as session:
        sub = session.scalars(select(Subscription)).one()
        assert (sub.status, sub.plan_id) == ("active", "growth")
        assert sub.current_period_start is not None
        assert ledger.balance(session, "acct_inv_first") == 12_000
        entry = session.scalars(select(CreditLedgerEntry).filter_by(account_id="acct_inv_first")).one()
        payment = session.scalars(select(Payment).filter_by(account_id="acct_inv_first")).one()
        assert (entry.payment_id, payment.credits_granted) == (payment.id, 12_000)
        assert session.get_one(type(sub), sub.id).account_id == "acct_inv_first"
