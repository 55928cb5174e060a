"""The PayPal endpoints of the billing API against a local stand-in for PayPal's REST API that
answers in PayPal's shapes and records what billhook sent."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from shared import credentials, inbox, processing
from shared.billing import ledger
from shared.models import Account, Payment, Plan, Subscription
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET, INSTRUMENT_DECLINED, INTERNAL_SERVER_ERROR

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


def _create_order(client, auth, package_id: str = "value", account_id: str = "acct_1"):
    return client.post("/api/v1/billing/paypal/create-order", json={"package_id": package_id}, headers=auth(account_id))


def _capture(client, auth, order_id: str, account_id: str = "acct_1"):
    return client.post("/api/v1/billing/paypal/capture-order", json={"order_id": order_id}, headers=auth(account_id))


def _balance(session_factory, account_id: str = "acct_1") -> int:
    with session_factory() as session:
        return ledger.balance(session, account_id)


# -- create-order -----------------------------------------------------------------------------


def test_create_order_asks_paypal_for_the_package_price_with_the_account_in_custom_id(
    client, fake_paypal, paypal_provider, auth
):
    response = _create_order(client, auth, "value")
    assert response.status_code == 200, response.json
    order_id = response.json["order_id"]
    assert response.json == {
        "order_id": order_id,
        "approve_url": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}",
        "status": "PAYER_ACTION_REQUIRED",
    }
    (call,) = fake_paypal.calls("POST", "/v2/checkout/orders")
    body = call.json
    unit = body["purchase_units"][0]
    assert body["intent"] == "CAPTURE"
    assert unit["amount"] == {"currency_code": "USD", "value": "29.99"}
    assert unit["custom_id"] == "acct_1:value"
    experience = body["payment_source"]["paypal"]["experience_context"]
    assert experience["return_url"] == f"{FRONTEND}/billing/paypal/return"
    assert experience["cancel_url"] == f"{FRONTEND}/billing/cancel"
    assert call.header("Authorization") == f"Bearer {fake_paypal.tokens_issued[0]}"
    assert call.header("PayPal-Request-Id").startswith("billhook-order-")


def test_the_oauth_token_is_fetched_once_and_reused(client, fake_paypal, paypal_provider, auth):
    _create_order(client, auth, "value")
    _create_order(client, auth, "pro")
    assert len(fake_paypal.calls("POST", "/v1/oauth2/token")) == 1
    assert len(fake_paypal.calls("POST", "/v2/checkout/orders")) == 2


def test_a_repeated_idempotency_key_returns_the_same_order(client, fake_paypal, paypal_provider, auth):
    headers = {**auth(), "Idempotency-Key": "click-7"}
    first = client.post("/api/v1/billing/paypal/create-order", json={"package_id": "pro"}, headers=headers)
    again = client.post("/api/v1/billing/paypal/create-order", json={"package_id": "pro"}, headers=headers)
    assert first.json["order_id"] == again.json["order_id"]
    assert len(fake_paypal.orders) == 1


def test_create_order_for_an_unknown_package_is_404(client, fake_paypal, paypal_provider, auth):
    response = _create_order(client, auth, "nope")
    assert response.status_code == 404
    assert fake_paypal.requests == []


def test_paypal_without_credentials_is_503(client, fake_paypal, auth):
    response = _create_order(client, auth, "value")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "not_configured"


# -- capture-order ----------------------------------------------------------------------------


def test_capturing_an_approved_order_grants_its_credits_and_answers_the_balance(
    client, seeded, fake_paypal, paypal_provider, auth
):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    response = _capture(client, auth, order_id)
    assert response.status_code == 200, response.json
    capture_id = fake_paypal.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]["id"]
    assert response.json == {
        "order_id": order_id,
        "capture_id": capture_id,
        "status": "COMPLETED",
        "credits_granted": 2_000,
        "balance": 2_000,
    }
    (capture_call,) = fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture")
    assert capture_call.header("PayPal-Request-Id") == f"billhook-capture-{order_id}"
    with seeded() as session:
        payment = session.query(Payment).one()
        assert (payment.provider, payment.provider_payment_id, payment.status) == ("paypal", order_id, "succeeded")
        assert (payment.amount_cents, payment.credits_granted) == (2999, 2_000)


def test_capturing_twice_grants_the_credits_once(client, seeded, fake_paypal, paypal_provider, auth):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    first = _capture(client, auth, order_id)
    second = _capture(client, auth, order_id)
    assert (first.json["credits_granted"], second.json["credits_granted"]) == (2_000, 0)
    assert second.json["status"] == "COMPLETED" and second.json["balance"] == 2_000
    assert _balance(seeded) == 2_000


def test_a_capture_and_its_webhook_grant_the_credits_once_in_either_order(
    client, seeded, fake_paypal, paypal_provider, auth, now
):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    assert _capture(client, auth, order_id).json["credits_granted"] == 2_000
    capture = fake_paypal.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]
    resource = {**capture, "supplementary_data": {"related_ids": {"order_id": order_id}}}
    event = {
        "id": "WH-9UG43882HX7271132-6E0871324L5463415",
        "event_version": "1.0",
        "create_time": "2026-11-24T16:01:05.000Z",
        "resource_type": "capture",
        "resource_version": "2.0",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "summary": "Payment completed for $ 29.99 USD",
        "resource": resource,
    }
    with seeded.begin() as session:
        stored = inbox.record_event(
            session,
            provider="paypal",
            event_id=event["id"],
            type=event["event_type"],
            payload=event,
            event_created_at=datetime(2026, 11, 24, 16, 1, 5, tzinfo=UTC),
            handled=True,
            at=now,
        )
    result = processing.process_event(seeded, stored.id, clock=lambda: now)
    assert result.outcome == processing.DONE
    assert _balance(seeded) == 2_000
    # and a capture call after the webhook granted changes nothing either
    assert _capture(client, auth, order_id).json["credits_granted"] == 0
    assert _balance(seeded) == 2_000


def test_an_order_already_completed_is_granted_from_paypals_order_without_a_second_capture(
    client, seeded, fake_paypal, paypal_provider, auth
):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    fake_paypal.capture_elsewhere(order_id)  # e.g. the approved-order sweep got there first
    response = _capture(client, auth, order_id)
    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["credits_granted"]) == ("COMPLETED", 2_000)
    assert fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture") == []


def test_an_order_captured_for_another_amount_is_502_and_grants_nothing(
    client, seeded, fake_paypal, paypal_provider, auth
):
    order_id = fake_paypal.add_order(custom_id="acct_1:value", value="0.01")
    response = _capture(client, auth, order_id)
    assert response.status_code == 502, response.json
    assert response.json["error"]["provider"] == "paypal"
    assert "captured '0.01' USD, expected" in response.json["error"]["message"]
    with seeded() as session:
        assert ledger.balance(session, "acct_1") == 0


def test_an_order_captured_elsewhere_between_look_and_capture_is_granted_from_the_order(
    client, seeded, fake_paypal, paypal_provider, auth
):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    approved = copy.deepcopy(fake_paypal.orders[order_id])
    fake_paypal.capture_elsewhere(order_id)
    fake_paypal.fail_next(f"/v2/checkout/orders/{order_id}", 200, approved)  # billhook's first look: APPROVED
    response = _capture(client, auth, order_id)
    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["credits_granted"]) == ("COMPLETED", 2_000)
    # PayPal refused billhook's capture (ORDER_ALREADY_CAPTURED); the order then told the result.
    assert len(fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture")) == 1
    assert len(fake_paypal.calls("GET", f"/v2/checkout/orders/{order_id}")) == 2
    assert _balance(seeded) == 2_000


def test_capturing_before_the_buyer_approved_is_409(client, seeded, fake_paypal, paypal_provider, auth):
    order_id = _create_order(client, auth, "value").json["order_id"]
    response = _capture(client, auth, order_id)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "order_not_approved"
    assert _balance(seeded) == 0


def test_capturing_someone_elses_order_is_404_and_captures_nothing(client, seeded, fake_paypal, paypal_provider, auth):
    order_id = _create_order(client, auth, "value", account_id="acct_owner").json["order_id"]
    fake_paypal.approve(order_id)
    response = _capture(client, auth, order_id, account_id="acct_thief")
    assert response.status_code == 404
    assert fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture") == []
    assert fake_paypal.orders[order_id]["status"] == "APPROVED"


def test_capturing_an_unknown_order_is_404(client, fake_paypal, paypal_provider, auth):
    response = _capture(client, auth, "5ONOSUCHORDER0001")
    assert response.status_code == 404


def test_an_order_id_that_is_a_path_is_400_and_reaches_no_provider(client, fake_paypal, paypal_provider, auth):
    response = _capture(client, auth, "../../v1/oauth2/token")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_field"
    assert fake_paypal.calls("POST", "/v1/oauth2/token") == []


def test_a_declined_instrument_is_502_naming_paypal(client, seeded, fake_paypal, paypal_provider, auth):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    fake_paypal.fail_next(f"/v2/checkout/orders/{order_id}/capture", 422, INSTRUMENT_DECLINED)
    response = _capture(client, auth, order_id)
    assert response.status_code == 502
    error = response.json["error"]
    assert error["provider"] == "paypal" and "INSTRUMENT_DECLINED" in error["message"]
    assert CLIENT_SECRET not in response.get_data(as_text=True)
    assert _balance(seeded) == 0


def test_a_capture_paypal_answers_as_declined_is_502_and_recorded_as_failed(
    client, seeded, fake_paypal, paypal_provider, auth
):
    order_id = _create_order(client, auth, "value").json["order_id"]
    fake_paypal.approve(order_id)
    declined = copy.deepcopy(fake_paypal.capture_elsewhere(order_id))
    capture = declined["purchase_units"][0]["payments"]["captures"][0]
    capture.update(status="DECLINED", status_details={"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"})
    fake_paypal.orders[order_id]["status"] = "APPROVED"
    fake_paypal.fail_next(f"/v2/checkout/orders/{order_id}/capture", 201, declined)
    response = _capture(client, auth, order_id)
    assert response.status_code == 502
    assert response.json["error"]["provider"] == "paypal"
    assert "declined" in response.json["error"]["message"]
    with seeded() as session:
        assert session.query(Payment).one().status == "failed"
    assert _balance(seeded) == 0


def test_a_paypal_server_error_is_502(client, fake_paypal, paypal_provider, auth):
    fake_paypal.fail_next("/v2/checkout/orders", 500, INTERNAL_SERVER_ERROR)
    response = _create_order(client, auth, "value")
    assert response.status_code == 502
    assert response.json["error"]["provider"] == "paypal"


def test_a_paypal_timeout_is_504(client, seeded, fake_paypal, auth):
    with seeded.begin() as session:
        credentials.set_provider(
            session, "paypal", api_key=CLIENT_ID, api_secret=CLIENT_SECRET, config={"timeout_seconds": 0.3}
        )
    fake_paypal.stall_next("/v2/checkout/orders", 1.5)
    response = _create_order(client, auth, "value")
    assert response.status_code == 504
    assert response.json["error"]["code"] == "provider_timeout"
    assert "timed out" in response.json["error"]["message"]


def test_refused_client_credentials_are_502_without_the_secret(client, seeded, fake_paypal, auth):
    with seeded.begin() as session:
        credentials.set_provider(session, "paypal", api_key=CLIENT_ID, api_secret="wrong-secret-value")
    response = _create_order(client, auth, "value")
    assert response.status_code == 502
    assert "wrong-secret-value" not in response.get_data(as_text=True)


# -- create-subscription ----------------------------------------------------------------------


def test_create_subscription_uses_the_plans_paypal_plan_and_the_account_in_custom_id(
    client, fake_paypal, paypal_provider, auth
):
    response = client.post(
        "/api/v1/billing/paypal/create-subscription",
        json={"plan_id": "growth"},
        headers=auth("acct_1", email="ada@example.com"),
    )
    assert response.status_code == 200, response.json
    subscription_id = response.json["subscription_id"]
    assert response.json["status"] == "APPROVAL_PENDING"
    assert response.json["approve_url"].startswith("https://www.sandbox.paypal.com/webapps/billing/subscriptions")
    (call,) = fake_paypal.calls("POST", "/v1/billing/subscriptions")
    body = call.json
    assert body["plan_id"] == "P-BILLHOOK-GROWTH"
    assert body["custom_id"] == "acct_1:growth"
    assert body["subscriber"] == {"email_address": "ada@example.com"}
    assert body["application_context"]["return_url"] == f"{FRONTEND}/billing/paypal/return"
    assert call.header("PayPal-Request-Id").startswith("billhook-subscription-")
    assert subscription_id in fake_paypal.subscriptions


def test_create_subscription_for_a_plan_without_a_paypal_plan_is_400(
    client, seeded, fake_paypal, paypal_provider, auth
):
    with seeded.begin() as session:
        session.get(Plan, "growth").paypal_plan_id = None
    response = client.post("/api/v1/billing/paypal/create-subscription", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 400
    assert response.json["error"]["code"] == "not_purchasable"


def test_create_subscription_with_a_live_subscription_is_409(client, seeded, fake_paypal, paypal_provider, auth):
    with seeded.begin() as session:
        session.add(Account(id="acct_1"))
        session.flush()
        session.add(
            Subscription(
                account_id="acct_1",
                provider="stripe",
                provider_subscription_id="sub_1",
                plan_id="starter",
                status="active",
            )
        )
    response = client.post("/api/v1/billing/paypal/create-subscription", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 409
    assert fake_paypal.calls("POST", "/v1/billing/subscriptions") == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/billing/paypal/create-order",
        "/api/v1/billing/paypal/capture-order",
        "/api/v1/billing/paypal/create-subscription",
    ],
)
def test_paypal_endpoints_need_a_bearer_token(client, path):
    response = client.post(path, json={"package_id": "value", "order_id": "X", "plan_id": "growth"})
    assert response.status_code == 401
