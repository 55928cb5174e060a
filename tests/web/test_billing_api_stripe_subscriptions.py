"""Stripe subscriptions from the app: trials and Checkout options on the session billhook creates,
and cancel / resume through Stripe, against the local stand-in for api.stripe.com. The store
changes only when Stripe's webhook arrives; the endpoints answer what Stripe said."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared import credentials, processing
from shared.models import Account, CreditLedgerEntry, EmailOutbox, Plan, Subscription, WebhookEvent
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se

FRONTEND = "https://app.example.test"


@pytest.fixture
def settings(settings, fake_stripe):
    return settings.with_overrides(stripe_api_base=fake_stripe.url, frontend_url=FRONTEND)


@pytest.fixture
def stripe_config(seeded):
    def configure(**config):
        with seeded.begin() as session:
            credentials.set_provider(
                session, "stripe", config={"max_network_retries": 0, "timeout_seconds": 2, **config}
            )

    configure()
    return configure


def _subscription(seeded, fake_stripe, *, provider: str = "stripe", status: str = "active") -> str:
    with seeded.begin() as session:
        session.add(Account(id="acct_1", stripe_customer_id="cus_existing"))
        session.flush()
        session.add(
            Subscription(
                account_id="acct_1",
                provider=provider,
                provider_subscription_id="sub_live",
                plan_id="growth",
                status=status,
            )
        )
    fake_stripe.add_subscription(
        subscription_id="sub_live", customer="cus_existing", price_id="price_billhook_growth_monthly"
    )
    return "sub_live"


def _stored(seeded) -> Subscription:
    with seeded() as session:
        return session.scalars(select(Subscription)).one()


# -- trials and checkout options --------------------------------------------------------------


def test_a_plans_trial_days_go_to_stripe_and_into_the_subscriptions_metadata(
    client, seeded, fake_stripe, stripe_config, auth
):
    with seeded.begin() as session:
        session.get(Plan, "growth").trial_days = 14
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 200, response.json
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert created.form["subscription_data[trial_period_days]"] == "14"
    assert created.form["subscription_data[metadata][trial_days]"] == "14"


def test_a_plan_without_a_trial_sends_no_trial(client, fake_stripe, stripe_config, auth):
    client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert "subscription_data[trial_period_days]" not in created.form
    assert "allow_promotion_codes" not in created.form and "automatic_tax[enabled]" not in created.form


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/billing/stripe/checkout", {"plan_id": "growth"}),
        ("/api/v1/billing/stripe/credit-checkout", {"package_id": "pro"}),
    ],
)
def test_checkout_options_from_the_providers_config_go_to_stripe(client, fake_stripe, stripe_config, auth, path, body):
    stripe_config(
        allow_promotion_codes=True, automatic_tax=True, tax_id_collection=True, billing_address_collection="required"
    )
    response = client.post(path, json=body, headers=auth())
    assert response.status_code == 200, response.json
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    form = created.form
    assert form["allow_promotion_codes"] == "true"
    assert form["automatic_tax[enabled]"] == "true"
    assert form["tax_id_collection[enabled]"] == "true"
    assert form["billing_address_collection"] == "required"
    assert form["customer_update[address]"] == "auto" and form["customer_update[name]"] == "auto"


def test_a_wrong_checkout_option_is_503_not_configured(client, fake_stripe, stripe_config, auth):
    stripe_config(billing_address_collection="sometimes")
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 503
    assert response.json["error"]["code"] == "not_configured"
    assert fake_stripe.calls("POST", "/v1/checkout/sessions") == []


# -- cancel and resume ------------------------------------------------------------------------


def test_cancel_asks_stripe_to_cancel_at_the_periods_end_and_answers_what_stripe_said(
    client, seeded, fake_stripe, stripe_config, auth
):
    _subscription(seeded, fake_stripe)
    response = client.post("/api/v1/billing/stripe/cancel-subscription", json={"at_period_end": True}, headers=auth())
    assert response.status_code == 200, response.json
    assert response.json["subscription_id"] == "sub_live"
    assert response.json["cancel_at_period_end"] is True
    assert response.json["status"] == "active"
    (update,) = fake_stripe.calls("POST", "/v1/subscriptions/sub_live")
    assert update.form["cancel_at_period_end"] == "true"
    assert update.header("Idempotency-Key").startswith("billhook:cancel:sub_live:")
    assert _stored(seeded).cancel_at_period_end is not True  # the webhook applies it


def test_resume_undoes_the_scheduled_cancellation_at_stripe(client, seeded, fake_stripe, stripe_config, auth):
    _subscription(seeded, fake_stripe)
    fake_stripe.subscriptions["sub_live"]["cancel_at_period_end"] = True
    response = client.post("/api/v1/billing/stripe/resume-subscription", headers=auth())
    assert response.status_code == 200, response.json
    assert response.json["cancel_at_period_end"] is False
    (update,) = fake_stripe.calls("POST", "/v1/subscriptions/sub_live")
    assert update.form["cancel_at_period_end"] == "false"
    assert update.header("Idempotency-Key").startswith("billhook:resume:sub_live:")


@pytest.mark.parametrize("body", [{}, {"at_period_end": False}, {"at_period_end": "true"}, {"at_period_end": 1}])
def test_cancel_must_say_at_period_end_true(client, seeded, fake_stripe, stripe_config, auth, body):
    _subscription(seeded, fake_stripe)
    response = client.post("/api/v1/billing/stripe/cancel-subscription", json=body, headers=auth())
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_field"
    assert fake_stripe.calls("POST") == []


@pytest.mark.parametrize("path", ["cancel-subscription", "resume-subscription"])
def test_without_a_live_subscription_cancel_and_resume_are_404(client, seeded, fake_stripe, stripe_config, auth, path):
    _subscription(seeded, fake_stripe, status="canceled")
    response = client.post(f"/api/v1/billing/stripe/{path}", json={"at_period_end": True}, headers=auth())
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert fake_stripe.calls("POST") == []


def test_a_paypal_subscription_is_not_cancelled_through_stripe(client, seeded, fake_stripe, stripe_config, auth):
    _subscription(seeded, fake_stripe, provider="paypal")
    response = client.post("/api/v1/billing/stripe/cancel-subscription", json={"at_period_end": True}, headers=auth())
    assert response.status_code == 409
    assert response.json["error"]["code"] == "subscription_conflict"


def test_stripe_refusing_the_change_is_502(client, seeded, fake_stripe, stripe_config, auth):
    _subscription(seeded, fake_stripe)
    fake_stripe.subscriptions["sub_live"]["status"] = "canceled"  # canceled at Stripe, webhook not here yet
    response = client.post("/api/v1/billing/stripe/resume-subscription", headers=auth())
    assert response.status_code == 502
    assert response.json["error"]["provider"] == "stripe"


# -- the return page --------------------------------------------------------------------------


def _bought(client, fake_stripe, auth, account_id: str = "acct_1") -> dict:
    started = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth(account_id))
    assert started.status_code == 200, started.json
    return fake_stripe.complete_checkout(started.json["session_id"])


def test_the_return_page_applies_the_session_at_once_and_its_webhook_changes_nothing(
    client, seeded, fake_stripe, stripe_config, auth, enqueued
):
    completed = _bought(client, fake_stripe, auth)
    response = client.get(f"/api/v1/billing/stripe/checkout/{completed['id']}", headers=auth())
    assert response.status_code == 200, response.json
    assert response.json["applied"] is True and response.json["status"] == "complete"
    account = client.get("/api/v1/billing/account", headers=auth()).json
    assert account["balance"] == 12_000
    assert (account["subscription"]["plan_id"], account["subscription"]["status"]) == ("growth", "active")

    assert client.get(f"/api/v1/billing/stripe/checkout/{completed['id']}", headers=auth()).status_code == 200
    # Stripe's own event for the same session, delivered and processed later.
    evt = se.event("checkout.session.completed", completed, created=completed["created"] + 5)
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    assert processing.process_event(seeded, enqueued[-1], clock=lambda: datetime.now(UTC)).outcome == processing.DONE

    account = client.get("/api/v1/billing/account", headers=auth()).json
    assert account["balance"] == 12_000
    assert account["subscription"]["status"] == "active"
    with seeded() as session:
        assert len(session.scalars(select(EmailOutbox).filter_by(template="subscription_activated")).all()) == 1
        assert len(session.scalars(select(CreditLedgerEntry)).all()) == 1


def test_an_open_session_is_reported_and_nothing_is_stored(client, seeded, fake_stripe, stripe_config, auth):
    started = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    response = client.get(f"/api/v1/billing/stripe/checkout/{started.json['session_id']}", headers=auth())
    assert response.status_code == 200
    assert response.json["applied"] is False and response.json["status"] == "open"
    with seeded() as session:
        assert session.scalars(select(WebhookEvent)).all() == []


def test_another_accounts_session_is_404_and_applies_nothing(client, seeded, fake_stripe, stripe_config, auth):
    completed = _bought(client, fake_stripe, auth, "acct_other")
    response = client.get(f"/api/v1/billing/stripe/checkout/{completed['id']}", headers=auth("acct_1"))
    assert response.status_code == 404
    with seeded() as session:
        assert session.scalars(select(WebhookEvent)).all() == []
        assert session.scalars(select(Subscription)).all() == []


def test_a_session_stripe_does_not_know_is_404(client, fake_stripe, stripe_config, auth):
    response = client.get("/api/v1/billing/stripe/checkout/cs_test_missing", headers=auth())
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# -- no double subscription -------------------------------------------------------------------


def test_a_second_checkout_for_the_same_plan_returns_the_open_session(client, fake_stripe, stripe_config, auth):
    first = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    second = client.post(
        "/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers={**auth(), "Idempotency-Key": "tab-2"}
    )
    assert second.status_code == 200
    assert second.json == first.json
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 1


def test_a_checkout_for_another_plan_expires_the_open_one_at_stripe(client, fake_stripe, stripe_config, auth):
    first = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    second = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "scale"}, headers=auth())
    assert second.status_code == 200
    assert second.json["session_id"] != first.json["session_id"]
    assert fake_stripe.checkout_sessions[first.json["session_id"]]["status"] == "expired"
    assert fake_stripe.checkout_sessions[second.json["session_id"]]["status"] == "open"
    assert fake_stripe.calls("POST", f"/v1/checkout/sessions/{first.json['session_id']}/expire")


def test_an_open_credit_checkout_is_left_alone(client, fake_stripe, stripe_config, auth):
    bought = client.post("/api/v1/billing/stripe/credit-checkout", json={"package_id": "pro"}, headers=auth())
    client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert fake_stripe.checkout_sessions[bought.json["session_id"]]["status"] == "open"
