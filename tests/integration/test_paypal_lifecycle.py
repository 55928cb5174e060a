"""PayPal's lifecycle end to end: payment failures, disputes and reversals signed offline over
real HTTP, a real Celery worker on PostgreSQL and Redis; duplicated, concurrent and reordered
deliveries land their effects once, the reversed sale's credit note included."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared import credentials
from shared.billing import ledger
from shared.models import CreditLedgerEntry, CreditNote, Dispute, EmailOutbox, Subscription, WebhookEvent
from shared.paypal.webhooks import CertificateCache
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.integration import support
from web.webhooks.paypal import CERTS_EXTENSION

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ACCOUNT = "acct_pp_life"
SUB = "I-LIFE1"
COMMON = {"account_id": ACCOUNT, "plan_id": "growth", "paypal_plan_id": "P-BILLHOOK-GROWTH"}


@pytest.fixture
def paypal_settings(pg_settings, pg_session_factory, fake_paypal):
    with pg_session_factory.begin() as session:
        credentials.set_provider(
            session,
            "paypal",
            api_key=CLIENT_ID,
            api_secret=CLIENT_SECRET,
            webhook_id=pe.WEBHOOK_ID,
            config={"verification": "offline"},
        )
    return pg_settings.with_overrides(paypal_api_base=fake_paypal.url)


@pytest.fixture
def web(live_web_factory, paypal_settings):
    server = live_web_factory(paypal_settings)
    pem = pe.signing_cert().pem
    server.app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=lambda _url: pem)
    return server


def post_all(web, events, copies: int = 1) -> None:
    def post(evt):
        body, headers = pe.signed(evt)
        return web.post("/webhooks/paypal", body, headers)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, [e for e in events for _ in range(copies)]))
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]


def handled(factory, events) -> None:
    ids = [e["id"] for e in events]

    def done():
        with factory() as session:
            statuses = session.scalars(select(WebhookEvent.status).where(WebhookEvent.event_id.in_(ids))).all()
        return len(statuses) == len(ids) and set(statuses) == {"succeeded"}

    support.wait_for(done, 30, message=f"events {ids} succeeded")


def test_failures_disputes_and_reversals_land_once(paypal_settings, pg_session_factory, worker_factory, web):
    worker_factory(paypal_settings, concurrency=2)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    activated = pe.event(
        "BILLING.SUBSCRIPTION.ACTIVATED",
        pe.subscription(**COMMON, subscription_id=SUB, start_time=start),
        created=start,
    )
    first_sale = pe.event(
        "PAYMENT.SALE.COMPLETED",
        pe.sale(subscription_id=SUB, amount_cents=19900, created=start + timedelta(seconds=20)),
        created=start + timedelta(seconds=20),
    )
    post_all(web, [activated, first_sale])
    handled(pg_session_factory, [activated, first_sale])

    failures = [
        pe.event(
            "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
            pe.failed_subscription(
                **COMMON,
                subscription_id=SUB,
                start_time=start,
                failed_payments_count=n,
                amount_cents=19900,
                failed_at=start + timedelta(days=30 + n),
            ),
            created=start + timedelta(days=30 + n),
        )
        for n in (1, 2)  # the cycle's payment and PayPal's retry of it
    ]
    sale_id = first_sale["resource"]["id"]
    dispute_id = f"PP-D-{pe.unique()}"
    opened = pe.event(
        "CUSTOMER.DISPUTE.CREATED",
        pe.dispute(
            transaction_id=sale_id, amount_cents=19900, dispute_id=dispute_id, created=start + timedelta(days=35)
        ),
        created=start + timedelta(days=35),
    )
    resolved = pe.event(
        "CUSTOMER.DISPUTE.RESOLVED",
        pe.dispute(
            transaction_id=sale_id,
            amount_cents=19900,
            dispute_id=dispute_id,
            status="RESOLVED",
            outcome_code="RESOLVED_BUYER_FAVOUR",
            created=start + timedelta(days=35),
        ),
        created=start + timedelta(days=38),
    )
    reversal = pe.event(
        "PAYMENT.SALE.REVERSED",
        pe.sale_reversal(sale_id=sale_id, amount_cents=19900, created=start + timedelta(days=38)),
        created=start + timedelta(days=38, seconds=1),
    )
    events = [reversal, resolved, failures[1], opened, failures[0]]  # newest first
    post_all(web, events, copies=2)
    handled(pg_session_factory, events)

    with pg_session_factory() as session:
        assert session.scalars(select(Subscription)).one().status == "past_due"
        assert len(session.scalars(select(EmailOutbox).filter_by(template="payment_failed")).all()) == 1
        assert session.scalars(select(Dispute)).one().state == "lost"
        assert ledger.balance(session, ACCOUNT) == 0  # taken back once, by the dispute or the reversal
        taken = session.scalars(
            select(CreditLedgerEntry.amount).where(CreditLedgerEntry.kind != ledger.GRANT_SUBSCRIPTION)
        ).all()
        credited = session.scalars(select(CreditNote.amount_cents)).all()
        assert not session.scalars(select(EmailOutbox).filter_by(template="refund_notification")).all()
    assert sum(taken) == -12_000 and len(taken) == 1
    assert credited == [19900]  # the sale's invoice credited once, by the reversal or the lost dispute
