"""`billhook reconcile paypal --since` against the local PayPal stand-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.models import WebhookEvent
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET, FakePayPal


@pytest.fixture
def paypal_cli(billhook):
    server = FakePayPal().start()
    billhook.env["PAYPAL_API_BASE"] = server.url
    billhook("seed")
    billhook("providers", "set", "paypal", "--api-key", CLIENT_ID, "--api-secret", CLIENT_SECRET)
    yield billhook, server
    server.stop()


def test_reconcile_paypal_since_stores_the_missing_events_and_says_how_many(paypal_cli):
    billhook, paypal = paypal_cli
    at = datetime.now(UTC) - timedelta(hours=2)
    resource = pe.sale(subscription_id="I-RECONCILE1", amount_cents=2900, created=at)
    paypal.webhook_events = [pe.event("PAYMENT.SALE.COMPLETED", resource, created=at)]

    output = billhook("reconcile", "paypal", "--since", "3h").output

    assert "checked 1 PayPal event(s)" in output and "1 missing, now stored" in output
    with billhook.session_factory() as session:
        assert [e.event_id for e in session.scalars(select(WebhookEvent))] == [paypal.webhook_events[0]["id"]]
    assert "0 missing" in billhook("reconcile", "paypal", "--since", "3h").output


def test_reconcile_paypal_without_credentials_says_so(billhook):
    billhook("seed")
    result = billhook("reconcile", "paypal", "--since", "1h", ok=False)
    assert result.exit_code == 1
    assert "PayPal has no client id/secret" in result.output
