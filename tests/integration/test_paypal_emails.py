"""PayPal's customer emails end to end: deliveries signed offline over real HTTP, a real Celery
worker on PostgreSQL and Redis, a local PayPal stand-in for captures and a local stand-in for
api.resend.com. Each wired PayPal event sends exactly one email under duplicate delivery, and the
captures made outside a webhook (the checkout API's capture endpoint, the worker's capture task)
publish their receipt themselves.

The test workers run without beat, so no outbox sweep runs: an email that arrives was published
after its transaction's commit by whoever committed it."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from shared import credentials
from shared.billing.accounts import ensure_account
from shared.email import outbox
from shared.models import EmailOutbox, WebhookEvent
from shared.paypal import orders as paypal_orders
from shared.paypal.webhooks import CertificateCache
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.integration import support
from web.auth import issue_token
from web.webhooks.paypal import CERTS_EXTENSION
from worker.messages import SWEEP_PAYPAL_CAPTURES

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

RESEND_KEY = "re_test_paypal_emails_0123456789"
BUYER, SUBSCRIBER = "acct_pp_buyer", "acct_pp_subscriber"


@pytest.fixture
def settings_(pg_settings, pg_session_factory, fake_resend, fake_paypal):
    with pg_session_factory.begin() as session:
        credentials.set_provider(
            session, "resend", api_key=RESEND_KEY, config={"from": "Billing <billing@example.com>"}
        )
        credentials.set_provider(
            session,
            "paypal",
            api_key=CLIENT_ID,
            api_secret=CLIENT_SECRET,
            webhook_id=pe.WEBHOOK_ID,
            config={"verification": "offline", "capture_grace_seconds": 0},
        )
        # The main app knows its customers' addresses; PayPal's payloads are not asked for them.
        for account_id in (BUYER, SUBSCRIBER):
            ensure_account(session, account_id, email=f"{account_id}@example.com")
    return pg_settings.with_overrides(resend_api_url=fake_resend.url, paypal_api_base=fake_paypal.url)


@pytest.fixture
def web(live_web_factory, settings_):
    server = live_web_factory(settings_)
    pem = pe.signing_cert().pem
    server.app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=lambda _url: pem)
    return server


def post(web, evt: dict) -> None:
    body, headers = pe.signed(evt)
    response = web.post("/webhooks/paypal", body, headers)
    assert response.status_code == 200, response.text


def post_duplicated(web, evt: dict) -> None:
    """The same delivery twice (PayPal retrying), then the same resource under a new event id."""
    for copy in (evt, evt, {**evt, "id": f"WH-{pe.unique()}-{pe.unique()}"}):
        post(web, copy)


def _rows(factory) -> list[EmailOutbox]:
    with factory() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def wait_all_sent(factory, expected: int, worker, timeout: float = 40.0) -> list[EmailOutbox]:
    def all_sent():
        rows = _rows(factory)
        return rows if len(rows) == expected and all(r.status == outbox.SENT for r in rows) else None

    try:
        return support.wait_for(all_sent, timeout, message=f"{expected} emails sent")
    except AssertionError as exc:
        seen = [(r.account_id, r.template, r.status, r.last_error) for r in _rows(factory)]
        raise AssertionError(f"{exc}\noutbox: {seen}\nworker log:\n{worker.log_tail()}") from None


def handled(factory, *events) -> bool:
    with factory() as session:
        statuses = session.scalars(
            select(WebhookEvent.status).where(WebhookEvent.event_id.in_([e["id"] for e in events]))
        ).all()
    return len(statuses) == len(events) and set(statuses) == {"succeeded"}


def assert_resend_got_exactly(fake_resend, rows: list[EmailOutbox]) -> None:
    time.sleep(0.5)  # a duplicate send would land now: none does
    assert len(fake_resend.emails) == len(rows)
    assert sorted(e["idempotency_key"] for e in fake_resend.emails) == sorted(r.idempotency_key for r in rows)
    assert {r.provider_message_id for r in rows} == {e["id"] for e in fake_resend.emails}


def test_each_wired_paypal_event_sends_exactly_one_email_under_duplicate_delivery(
    settings_, pg_session_factory, worker_factory, web, fake_resend
):
    worker = worker_factory(settings_, concurrency=2)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=31)

    # A credit package: bought, refunded in full (the balance falls below 100); another order denied.
    bought = pe.capture(order_id=pe.unique(), account_id=BUYER, package_id="starter", amount_cents=999)
    completed = pe.event("PAYMENT.CAPTURE.COMPLETED", bought)
    refunded = pe.event("PAYMENT.CAPTURE.REFUNDED", pe.refund(capture_id=bought["id"], amount_cents=999))
    denied = pe.event(
        "PAYMENT.CAPTURE.DENIED",
        pe.capture(order_id=pe.unique(), account_id=BUYER, package_id="starter", amount_cents=999, status="DENIED"),
    )
    # A subscription: activated, its first sale, a renewal, and the renewal refunded.
    sub = {"account_id": SUBSCRIBER, "plan_id": "growth", "paypal_plan_id": "P-BILLHOOK-GROWTH"}
    activated = pe.event(
        "BILLING.SUBSCRIPTION.ACTIVATED",
        pe.subscription(**sub, subscription_id="I-MAIL1", start_time=start),
        created=start,
    )
    first_at, renewed_at = start + timedelta(seconds=20), start + timedelta(days=30)
    first = pe.event(
        "PAYMENT.SALE.COMPLETED",
        pe.sale(subscription_id="I-MAIL1", amount_cents=19900, created=first_at),
        created=first_at,
    )
    renewal = pe.event(
        "PAYMENT.SALE.COMPLETED",
        pe.sale(subscription_id="I-MAIL1", amount_cents=19900, created=renewed_at),
        created=renewed_at,
    )
    refund_at = renewed_at + timedelta(days=1)
    sale_refunded = pe.event(
        "PAYMENT.SALE.REFUNDED",
        pe.sale_refund(sale_id=renewal["resource"]["id"], amount_cents=19900, created=refund_at),
        created=refund_at,
    )

    for evt in (completed, refunded, denied, activated, first, renewal, sale_refunded):
        post_duplicated(web, evt)

    rows = wait_all_sent(pg_session_factory, 8, worker)
    assert Counter((r.account_id, r.template) for r in rows) == Counter(
        {
            (BUYER, "payment_confirmation"): 1,
            (BUYER, "refund_notification"): 1,
            (BUYER, "low_credits"): 1,
            (BUYER, "payment_failed"): 1,
            (SUBSCRIBER, "subscription_activated"): 1,
            (SUBSCRIBER, "payment_confirmation"): 1,
            (SUBSCRIBER, "subscription_renewal"): 1,
            (SUBSCRIBER, "refund_notification"): 1,
        }
    )
    assert_resend_got_exactly(fake_resend, rows)
    assert Counter(e["to"][0] for e in fake_resend.emails) == Counter(
        {f"{BUYER}@example.com": 4, f"{SUBSCRIBER}@example.com": 4}
    )
    assert {r.backend for r in rows} == {"resend"}


def test_captures_outside_a_webhook_publish_their_receipt_once(
    settings_, pg_session_factory, worker_factory, web, fake_paypal, fake_resend
):
    worker = worker_factory(settings_, concurrency=2)

    # The buyer comes back: the checkout API's capture endpoint captures and grants (called twice).
    token = issue_token(settings_, BUYER)
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{web.url}/api/v1/billing/paypal"
    by_endpoint = requests.post(f"{api}/create-order", json={"package_id": "starter"}, headers=headers, timeout=30)
    endpoint_order = by_endpoint.json()["order_id"]
    fake_paypal.approve(endpoint_order)
    for _ in range(2):
        response = requests.post(f"{api}/capture-order", json={"order_id": endpoint_order}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text

    # The subscriber's browser never comes back: the capture sweep's task captures and grants.
    task_order = fake_paypal.add_order(custom_id=paypal_orders.order_custom_id(SUBSCRIBER, "starter"), value="9.99")
    approved = pe.event("CHECKOUT.ORDER.APPROVED", fake_paypal.orders[task_order])
    post(web, approved)
    support.wait_for(lambda: handled(pg_session_factory, approved), message="approved event handled")
    for _ in range(2):
        web.celery.send_task(SWEEP_PAYPAL_CAPTURES, queue=settings_.queue_name)

    rows = wait_all_sent(pg_session_factory, 2, worker)

    # PayPal's webhooks for both captures follow: the receipts were sent already.
    completions = []
    for order_id in (endpoint_order, task_order):
        captured = fake_paypal.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]
        completions.append(
            pe.event(
                "PAYMENT.CAPTURE.COMPLETED", captured | {"supplementary_data": {"related_ids": {"order_id": order_id}}}
            )
        )
    for evt in completions:
        post_duplicated(web, evt)
    support.wait_for(lambda: handled(pg_session_factory, *completions), message="capture webhooks handled")

    rows = _rows(pg_session_factory)
    assert [(r.account_id, r.template, r.status) for r in rows] == [
        (BUYER, "payment_confirmation", outbox.SENT),
        (SUBSCRIBER, "payment_confirmation", outbox.SENT),
    ]
    assert {r.idempotency_key for r in rows} == {
        f"email:payment_confirmation:paypal:{endpoint_order}",
        f"email:payment_confirmation:paypal:{task_order}",
    }
    assert_resend_got_exactly(fake_resend, rows)
