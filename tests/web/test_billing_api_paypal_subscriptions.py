"""Changing and cancelling a live PayPal subscription from the frontend, against the local PayPal
stand-in: billhook asks PayPal and changes nothing itself (the webhook applies the new state)."""

from __future__ import annotations

import pytest

from shared import credentials
from shared.models import Account, Subscription
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET

FRONTEND = "https://app.example.test"


@pytest.fixture
def settings(settings, fake_paypal):
    return settings.with_overrides(paypal_api_base=fake_paypal.url, frontend_url=FRONTEND)


@pytest.fixture
def paypal_provider(seeded):
    with seeded.begin() as session:
        credentials.set_provider(
            session, "paypal", api_key=CLIENT_ID, api_secret=CLIENT_SECRET, config={"timeout_seconds": 2}
        )


@pytest.fixture
def live_paypal(seeded, fake_paypal):
    subscription_id = fake_paypal.add_subscription(plan_id="P-BILLHOOK-STARTER", custom_id="acct_1:starter")
    with seeded.begin() as session:
        session.add(Account(id="acct_1"))
        session.flush()
        session.add(
            Subscription(
                account_id="acct_1",
                provider="paypal",
                provider_subscription_id=subscription_id,
                plan_id="starter",
                status="active",
            )
        )
    return subscription_id


def _stored(seeded, subscription_id):
    with seeded() as session:
        row = session.query(Subscription).filter_by(provider_subscription_id=subscription_id).one()
        return row.plan_id, row.status


def test_change_plan_revises_at_paypal_and_returns_its_approve_link(
    client, seeded, fake_paypal, paypal_provider, live_paypal, auth
):
    response = client.post("/api/v1/billing/paypal/change-plan", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 200, response.json
    assert response.json["subscription_id"] == live_paypal
    assert response.json["plan_id"] == "growth"
    assert "subscriptions/update" in response.json["approve_url"]
    (call,) = fake_paypal.calls("POST", f"/v1/billing/subscriptions/{live_paypal}/revise")
    assert call.json["plan_id"] == "P-BILLHOOK-GROWTH"
    assert call.json["application_context"]["return_url"] == f"{FRONTEND}/billing/paypal/return"
    assert call.header("PayPal-Request-Id").startswith("billhook-revise-")
    # Until BILLING.SUBSCRIPTION.UPDATED arrives the stored plan is the old one.
    assert _stored(seeded, live_paypal) == ("starter", "active")


def test_change_plan_to_the_current_plan_is_409_without_calling_paypal(
    client, fake_paypal, paypal_provider, live_paypal, auth
):
    response = client.post("/api/v1/billing/paypal/change-plan", json={"plan_id": "starter"}, headers=auth())
    assert response.status_code == 409
    assert fake_paypal.calls("POST", "/v1/billing/subscriptions/") == []


def test_change_plan_without_a_live_paypal_subscription_is_404(client, fake_paypal, paypal_provider, auth):
    response = client.post("/api/v1/billing/paypal/change-plan", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_change_plan_to_an_unknown_plan_is_404(client, fake_paypal, paypal_provider, live_paypal, auth):
    response = client.post("/api/v1/billing/paypal/change-plan", json={"plan_id": "nope"}, headers=auth())
    assert response.status_code == 404


def test_cancel_cancels_at_paypal_and_waits_for_the_webhook(
    client, seeded, fake_paypal, paypal_provider, live_paypal, auth
):
    response = client.post("/api/v1/billing/paypal/cancel-subscription", headers=auth())
    assert response.status_code == 200, response.json
    assert response.json == {"subscription_id": live_paypal, "status": "cancel_requested"}
    assert fake_paypal.subscriptions[live_paypal]["status"] == "CANCELLED"
    assert _stored(seeded, live_paypal) == ("starter", "active")


def test_cancel_twice_reports_paypals_refusal_as_502(client, fake_paypal, paypal_provider, live_paypal, auth):
    assert client.post("/api/v1/billing/paypal/cancel-subscription", headers=auth()).status_code == 200
    response = client.post("/api/v1/billing/paypal/cancel-subscription", headers=auth())
    assert response.status_code == 502
    assert "SUBSCRIPTION_STATUS_INVALID" in response.json["error"]["message"]


def test_cancel_of_another_accounts_subscription_is_404(client, fake_paypal, paypal_provider, live_paypal, auth):
    response = client.post("/api/v1/billing/paypal/cancel-subscription", headers=auth("acct_2"))
    assert response.status_code == 404
    assert fake_paypal.subscriptions[live_paypal]["status"] == "ACTIVE"


@pytest.mark.parametrize("path", ["/api/v1/billing/paypal/change-plan", "/api/v1/billing/paypal/cancel-subscription"])
def test_the_subscription_endpoints_need_a_bearer_token(client, path):
    assert client.post(path, json={"plan_id": "growth"}).status_code == 401
