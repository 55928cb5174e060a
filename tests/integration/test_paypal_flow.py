"""PayPal end to end: deliveries signed offline over real HTTP, a real Celery worker on PostgreSQL
and Redis, and a local PayPal stand-in for the capture the worker makes. Effects land once under
duplicated, concurrent and reordered delivery."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from shared import credentials
from shared.billing import ledger
from shared.models import Payment, Subscription, WebhookEvent
from shared.paypal import orders as paypal_orders
from shared.paypal.webhooks import CertificateCache
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.integration import support
from web.webhooks.paypal import CERTS_EXTENSION
from worker.messages import SWEEP_PAYPAL_CAPTURES

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ACCOUNT = "acct_paypal_it"


@pytest.fixture
def paypal_settings(pg_settings, pg_session_factory, fake_paypal):
    with pg_session_factory.begin() as session:
        credentials.set_provider(
            session,
            "paypal",
            api_key=CLIENT_ID,
            api_secret=CLIENT_SECRET,
            webhook_id=pe.WEBHOOK_ID,
            config={"verification": "offline", "capture_grace_seconds": 0},
        )
    return pg_settings.with_overrides(paypal_api_base=fake_paypal.url)


@pytest.fixture
def web(live_web_factory, paypal_settings):
    server = live_web_factory(paypal_settings)
    pem = pe.signing_cert().pem
    server.app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=lambda _url: pem)
    return server


def post(web, evt: dict):
    body, headers = pe.signed(evt)
    response = web.post("/webhooks/paypal", body, headers)
    assert response.status_code == 200, response.text
    return response


def succeeded(factory, *events) -> bool:
    with factory() as session:
        statuses = session.scalars(
            select(WebhookEvent.status).where(WebhookEvent.event_id.in_([e["id"] for e in events]))
        ).all()
    return len(statuses) == len(events) and set(statuses) == {"succeeded"}


def test_approved_order_is_captured_by_the_worker_and_granted_once(
    paypal_settings, pg_session_factory, worker_factory, web, fake_paypal
):
    worker_factory(paypal_settings, concurrency=2)
    order_id = fake_paypal.add_order(custom_id=paypal_orders.order_custom_id(ACCOUNT, "starter"), value="9.99")
    approved = pe.event("CHECKOUT.ORDER.APPROVED", fake_paypal.orders[order_id])
    post(web, approved)
    support.wait_for(lambda: succeeded(pg_session_factory, approved), message="approved event handled")

    # The browser never came back: the beat's capture sweep (twice, as beat would) queues the capture.
    for _ in range(2):
        web.celery.send_task(SWEEP_PAYPAL_CAPTURES, queue=paypal_settings.queue_name)
    support.wait_for(lambda: _balance(pg_session_factory) == 500, message="credits granted")

    captured = fake_paypal.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]
    completed = pe.event(
        "PAYMENT.CAPTURE.COMPLETED",
        captured | {"supplementary_data": {"related_ids": {"order_id": order_id}}},
    )
    with ThreadPoolExecutor(4) as pool:  # PayPal delivering the same event concurrently
        list(pool.map(lambda _: post(web, completed), range(4)))
    support.wait_for(lambda: succeeded(pg_session_factory, completed), message="capture webhook handled")

    with pg_session_factory() as session:
        assert ledger.balance(session, ACCOUNT) == 500
        assert session.scalar(select(func.count()).select_from(Payment)) == 1
    captures = fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture")
    assert {c.header("PayPal-Request-Id") for c in captures} == {paypal_orders.capture_request_id(order_id)}


def test_subscription_events_in_reverse_order_end_cancelled_with_one_grant(
    paypal_settings, pg_session_factory, worker_factory, web
):
    worker_factory(paypal_settings, concurrency=2)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    common = {"account_id": ACCOUNT, "plan_id": "growth", "paypal_plan_id": "P-BILLHOOK-GROWTH"}
    activated = pe.event(
        "BILLING.SUBSCRIPTION.ACTIVATED",
        pe.subscription(**common, subscription_id="I-IT1", start_time=start),
        created=start,
    )
    sale = pe.event(
        "PAYMENT.SALE.COMPLETED",
        pe.sale(subscription_id="I-IT1", amount_cents=19900, created=start + timedelta(seconds=20)),
        created=start + timedelta(seconds=20),
    )
    cancelled = pe.event(
        "BILLING.SUBSCRIPTION.CANCELLED",
        pe.subscription(
            **common,
            subscription_id="I-IT1",
            status="CANCELLED",
            start_time=start,
            status_update_time=start + timedelta(minutes=30),
        ),
        created=start + timedelta(minutes=30),
    )
    for evt in (cancelled, sale, activated):  # newest first; the sale waits for its activation
        post(web, evt)
    support.wait_for(lambda: succeeded(pg_session_factory, cancelled, sale, activated), 30, message="all handled")

    with pg_session_factory() as session:
        sub = session.scalars(select(Subscription)).one()
        assert (sub.status, sub.plan_id, sub.account_id) == ("canceled", "growth", ACCOUNT)
        assert ledger.balance(session, ACCOUNT) == 12_000
        assert session.scalar(select(func.count()).select_from(Payment)) == 1


def _balance(factory) -> int:
    with factory() as session:
        return ledger.balance(session, ACCOUNT)
