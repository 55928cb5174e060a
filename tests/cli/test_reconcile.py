"""`billhook reconcile stripe --since` and `billhook sync subscription ID` against a Stripe stand-in."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from shared.models import WebhookEvent
from tests.factories import stripe_events as se
from tests.fakes.stripe_events_api import FakeStripeEvents


@pytest.fixture
def stripe_cli(billhook):
    server = FakeStripeEvents().start()
    billhook.env["STRIPE_API_BASE"] = server.url
    billhook("seed")
    billhook("providers", "set", "stripe", "--api-key", "sk_test_cli")
    yield billhook, server
    server.stop()


def test_reconcile_stripe_since_stores_the_missing_events_and_says_how_many(stripe_cli):
    billhook, stripe = stripe_cli
    now = int(time.time())
    obj = se.checkout_session(account_id="acct_rec", mode="subscription", plan_id="growth")
    stripe.events = [se.event("checkout.session.completed", obj, created=now - 7200)]

    output = billhook("reconcile", "stripe", "--since", "3h").output

    assert "checked 1 Stripe event(s)" in output and "1 missing, now stored" in output
    assert "sweeper will queue" in output  # the CLI's broker is down in tests
    with billhook.session_factory() as session:
        assert [e.event_id for e in session.scalars(select(WebhookEvent))] == [stripe.events[0]["id"]]
    assert "0 missing" in billhook("reconcile", "stripe", "--since", "3h").output
    assert stripe.calls("GET", "/v1/events")[0].header("Authorization") == "Bearer sk_test_cli"


def test_reconcile_without_a_stripe_key_fails_saying_so(billhook):
    billhook("seed")
    result = billhook("reconcile", "stripe", ok=False)
    assert result.exit_code == 1 and "no API key" in result.output


def test_sync_subscription_prints_before_and_after(stripe_cli):
    billhook, stripe = stripe_cli
    stripe.add_subscription(
        subscription_id="sub_cli", customer="cus_cli", price_id="price_billhook_growth_monthly", status="active"
    )
    stripe.subscriptions["sub_cli"]["metadata"] = {"account_id": "acct_sync"}

    shown = json.loads(billhook("sync", "subscription", "sub_cli").output)

    assert shown["changed"] is True and shown["before"] is None
    assert (shown["after"]["account"], shown["after"]["status"], shown["after"]["plan"]) == (
        "acct_sync",
        "active",
        "growth",
    )
    missing = billhook("sync", "subscription", "sub_missing", ok=False)
    assert missing.exit_code == 1 and "resource_missing" in missing.output
