"""The billing API against a local stand-in for api.stripe.com that answers in Stripe's shapes and
records what billhook sent."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared import credentials, processing
from shared.billing import ledger
from shared.models import Account, Plan, Subscription
from shared.outcome import Outcome
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se
from tests.fakes.stripe_api import API_ERROR, CARD_DECLINED, FakeStripe
from web.auth import issue_token

FRONTEND = "https://app.example.test"
STRIPE_KEY = "sk_test_123"  # what the `seeded` fixture stores


@pytest.fixture
def settings(settings, fake_stripe):
    return settings.with_overrides(stripe_api_base=fake_stripe.url, frontend_url=FRONTEND)


@pytest.fixture
def stripe_config(seeded):
    """Stripe's provider config; tests answer fast: no SDK retries, a short timeout."""

    def configure(**config):
        with seeded.begin() as session:
            credentials.set_provider(
                session, "stripe", config={"max_network_retries": 0, "timeout_seconds": 2, **config}
            )

    configure()
    return configure


def _form(fake: FakeStripe, path: str) -> dict:
    (call,) = fake.calls("POST", path)
    return call.form


# -- catalog ----------------------------------------------------------------------------------


def test_plans_and_credit_packages_are_public_and_list_only_active_items(client, seeded):
    with seeded.begin() as session:
        session.get(Plan, "scale").active = False
    plans = client.get("/api/v1/billing/plans")
    packages = client.get("/api/v1/billing/credit-packages")
    assert plans.status_code == 200 and packages.status_code == 200
    assert [p["id"] for p in plans.json["plans"]] == ["starter", "growth"]
    assert plans.json["plans"][1] == {
        "id": "growth",
        "name": "Growth",
        "price_cents": 19900,
        "currency": "usd",
        "interval": "month",
        "included_credits": 12_000,
        "providers": ["stripe", "paypal"],
    }
    assert [p["id"] for p in packages.json["credit_packages"]] == ["starter", "value", "pro", "enterprise"]


# -- subscription checkout --------------------------------------------------------------------


def test_subscription_checkout_sends_plan_price_mode_metadata_and_frontend_urls(
    client, fake_stripe, stripe_config, auth
):
    response = client.post(
        "/api/v1/billing/stripe/checkout",
        json={"plan_id": "growth", "success_url": "https://evil.example/steal", "cancel_url": "https://evil.example"},
        headers=auth("acct_1", email="ada@example.com", name="Ada"),
    )
    assert response.status_code == 200, response.json
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    form = created.form
    assert response.json == {
        "action": "checkout",
        "checkout_url": f"https://checkout.stripe.com/c/pay/{response.json['session_id']}",
        "session_id": response.json["session_id"],
    }
    assert form["mode"] == "subscription"
    assert form["line_items[0][price]"] == "price_billhook_growth_monthly"
    assert form["line_items[0][quantity]"] == "1"
    assert form["metadata[account_id]"] == "acct_1" and form["metadata[plan_id]"] == "growth"
    assert form["subscription_data[metadata][account_id]"] == "acct_1"
    assert form["subscription_data[metadata][plan_id]"] == "growth"
    assert form["client_reference_id"] == "acct_1"
    assert form["success_url"] == f"{FRONTEND}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"
    assert form["cancel_url"] == f"{FRONTEND}/billing/cancel"
    assert created.header("Authorization") == f"Bearer {STRIPE_KEY}"
    assert created.header("Idempotency-Key").startswith("billhook:checkout:acct_1:plan:growth:")


def test_first_checkout_creates_the_stripe_customer_once_and_later_checkouts_reuse_it(
    client, seeded, fake_stripe, stripe_config, auth
):
    headers = auth("acct_1", email="ada@example.com", name="Ada")
    first = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "starter"}, headers=headers)
    second = client.post("/api/v1/billing/stripe/credit-checkout", json={"package_id": "value"}, headers=headers)
    assert first.status_code == 200 and second.status_code == 200
    (customer_call,) = fake_stripe.calls("POST", "/v1/customers")
    assert customer_call.form == {"metadata[account_id]": "acct_1", "email": "ada@example.com", "name": "Ada"}
    assert customer_call.header("Idempotency-Key") == "billhook:customer:acct_1"
    with seeded() as session:
        customer_id = session.get(Account, "acct_1").stripe_customer_id
    assert customer_id and customer_id.startswith("cus_")
    assert [c.form["customer"] for c in fake_stripe.calls("POST", "/v1/checkout/sessions")] == [customer_id] * 2


def test_a_repeated_idempotency_key_returns_the_same_checkout_session(client, fake_stripe, stripe_config, auth):
    headers = {**auth(), "Idempotency-Key": "click-42"}
    first = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "starter"}, headers=headers)
    again = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "starter"}, headers=headers)
    assert first.json["session_id"] == again.json["session_id"]
    keys = {c.header("Idempotency-Key") for c in fake_stripe.calls("POST", "/v1/checkout/sessions")}
    assert keys == {"billhook:checkout:acct_1:plan:starter:click-42"}


def test_a_malformed_idempotency_key_is_400(client, fake_stripe, stripe_config, auth):
    headers = {**auth(), "Idempotency-Key": "no spaces allowed"}
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "starter"}, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_idempotency_key"
    assert fake_stripe.requests == []


@pytest.mark.parametrize("plan_id", ["no-such-plan", "scale"])
def test_unknown_or_inactive_plan_is_404(client, seeded, fake_stripe, stripe_config, auth, plan_id):
    with seeded.begin() as session:
        session.get(Plan, "scale").active = False
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": plan_id}, headers=auth())
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert fake_stripe.requests == []


def test_plan_without_a_stripe_price_is_400(client, seeded, fake_stripe, stripe_config, auth):
    with seeded.begin() as session:
        session.get(Plan, "growth").stripe_price_id = None
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 400
    assert response.json["error"]["code"] == "not_purchasable"
    assert fake_stripe.requests == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_field"),
        ({"plan_id": ""}, "invalid_field"),
        ({"plan_id": 7}, "invalid_field"),
        ([], "invalid_body"),
    ],
)
def test_checkout_body_must_name_a_plan(client, fake_stripe, stripe_config, auth, body, code):
    response = client.post("/api/v1/billing/stripe/checkout", json=body, headers=auth())
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


def test_a_body_that_is_not_json_is_400(client, stripe_config, auth):
    response = client.post(
        "/api/v1/billing/stripe/checkout", data="plan_id=growth", headers={**auth(), "Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_body"


# -- plan changes -----------------------------------------------------------------------------


def _live_subscription(seeded, fake_stripe, *, plan_id: str, price_id: str, account_id: str = "acct_1") -> str:
    with seeded.begin() as session:
        session.add(Account(id=account_id, stripe_customer_id="cus_existing"))
        session.flush()
        session.add(
            Subscription(
                account_id=account_id,
                provider="stripe",
                provider_subscription_id="sub_live",
                plan_id=plan_id,
                status="active",
            )
        )
    fake_stripe.add_subscription(subscription_id="sub_live", customer="cus_existing", price_id=price_id)
    return "sub_live"


def test_checkout_on_a_live_subscription_changes_its_plan_with_the_configured_proration(
    client, seeded, fake_stripe, stripe_config, auth
):
    stripe_config(proration_behavior="always_invoice")
    _live_subscription(seeded, fake_stripe, plan_id="starter", price_id="price_billhook_starter_monthly")
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 200, response.json
    assert response.json == {
        "action": "plan_changed",
        "subscription_id": "sub_live",
        "from_plan_id": "starter",
        "plan_id": "growth",
        "proration_behavior": "always_invoice",
        "status": "active",
    }
    (update,) = fake_stripe.calls("POST", "/v1/subscriptions/sub_live")
    item_id = fake_stripe.subscriptions["sub_live"]["items"]["data"][0]["id"]
    assert update.form["items[0][id]"] == item_id
    assert update.form["items[0][price]"] == "price_billhook_growth_monthly"
    assert update.form["proration_behavior"] == "always_invoice"
    assert update.form["metadata[account_id]"] == "acct_1" and update.form["metadata[plan_id]"] == "growth"
    assert update.header("Idempotency-Key").startswith("billhook:plan-change:sub_live:growth:")
    assert fake_stripe.calls("POST", "/v1/checkout/sessions") == []


def test_plan_change_prorates_by_default(client, seeded, fake_stripe, stripe_config, auth):
    _live_subscription(seeded, fake_stripe, plan_id="starter", price_id="price_billhook_starter_monthly")
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "scale"}, headers=auth())
    assert response.json["proration_behavior"] == "create_prorations"
    assert _form(fake_stripe, "/v1/subscriptions/sub_live")["proration_behavior"] == "create_prorations"


def test_checkout_for_the_plan_already_subscribed_is_409(client, seeded, fake_stripe, stripe_config, auth):
    _live_subscription(seeded, fake_stripe, plan_id="growth", price_id="price_billhook_growth_monthly")
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 409
    assert response.json["error"]["code"] == "subscription_conflict"
    assert fake_stripe.calls("POST") == []


def test_a_subscription_stripe_already_canceled_gets_a_new_checkout(client, seeded, fake_stripe, stripe_config, auth):
    _live_subscription(seeded, fake_stripe, plan_id="starter", price_id="price_billhook_starter_monthly")
    fake_stripe.subscriptions["sub_live"]["status"] = "canceled"  # its webhook has not arrived yet
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 200
    assert response.json["action"] == "checkout"
    assert _form(fake_stripe, "/v1/checkout/sessions")["customer"] == "cus_existing"


# -- credit checkout --------------------------------------------------------------------------


def test_credit_checkout_is_payment_mode_for_the_package_price_with_metadata(client, fake_stripe, stripe_config, auth):
    response = client.post("/api/v1/billing/stripe/credit-checkout", json={"package_id": "pro"}, headers=auth())
    assert response.status_code == 200, response.json
    assert response.json["credits"] == 5_000
    form = _form(fake_stripe, "/v1/checkout/sessions")
    assert response.json["session_id"].startswith("cs_test")
    assert form["mode"] == "payment"
    assert form["line_items[0][price]"] == "price_billhook_credits_5000"
    assert form["metadata[account_id]"] == "acct_1" and form["metadata[package_id]"] == "pro"
    assert form["payment_intent_data[metadata][package_id]"] == "pro"
    # What the webhook checks the payment against, fixed at creation.
    assert (form["metadata[price_cents]"], form["metadata[currency]"]) == ("5999", "usd")
    assert "subscription_data[metadata][account_id]" not in form
    assert form["success_url"].startswith(FRONTEND)


def test_unknown_credit_package_is_404(client, fake_stripe, stripe_config, auth):
    response = client.post("/api/v1/billing/stripe/credit-checkout", json={"package_id": "nope"}, headers=auth())
    assert response.status_code == 404
    assert fake_stripe.requests == []


# -- billing portal ---------------------------------------------------------------------------


def test_billing_portal_without_a_stripe_customer_is_400(client, fake_stripe, stripe_config, auth):
    response = client.post("/api/v1/billing/stripe/billing-portal", headers=auth())
    assert response.status_code == 400
    assert response.json["error"]["code"] == "no_stripe_customer"
    assert fake_stripe.requests == []


def test_billing_portal_opens_for_the_callers_customer_and_returns_to_the_frontend(
    client, seeded, fake_stripe, stripe_config, auth
):
    with seeded.begin() as session:
        session.add(Account(id="acct_1", stripe_customer_id="cus_mine"))
        session.add(Account(id="acct_2", stripe_customer_id="cus_theirs"))
    response = client.post("/api/v1/billing/stripe/billing-portal", headers=auth("acct_1"))
    assert response.status_code == 200, response.json
    assert response.json["portal_url"].startswith("https://billing.stripe.com/p/session/")
    (call,) = fake_stripe.calls("POST", "/v1/billing_portal/sessions")
    assert call.form == {"customer": "cus_mine", "return_url": f"{FRONTEND}/billing"}
    assert call.header("Idempotency-Key").startswith("billhook:portal:acct_1:")


# -- provider failures ------------------------------------------------------------------------


def _assert_provider_error(response, *, mentions: str | None = None, status: int = 502, code: str = "provider_error"):
    assert response.status_code == status, response.json
    error = response.json["error"]
    assert error["code"] == code and error["provider"] == "stripe"
    assert error["message"].startswith("stripe: ")
    if mentions:
        assert mentions in error["message"]
    assert STRIPE_KEY not in response.get_data(as_text=True)


def test_a_declined_card_is_502_naming_stripe(client, fake_stripe, stripe_config, auth):
    fake_stripe.fail_next("/v1/checkout/sessions", 402, CARD_DECLINED)
    response = client.post("/api/v1/billing/stripe/credit-checkout", json={"package_id": "pro"}, headers=auth())
    _assert_provider_error(response, mentions="Your card was declined.")


def test_a_stripe_server_error_is_502(client, fake_stripe, stripe_config, auth):
    fake_stripe.fail_next("/v1/checkout/sessions", 500, API_ERROR)
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    _assert_provider_error(response, mentions="HTTP 500")


def test_a_stripe_timeout_is_504(client, fake_stripe, stripe_config, auth):
    stripe_config(timeout_seconds=0.3)
    fake_stripe.stall_next("/v1/customers", 1.5)
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    _assert_provider_error(response, mentions="timeout", status=504, code="provider_timeout")


def test_a_stripe_call_with_retries_is_bounded_in_total(client, fake_stripe, stripe_config, auth):
    stripe_config(timeout_seconds=0.6, max_network_retries=3)
    for _ in range(4):
        fake_stripe.stall_next("/v1/customers", 2)
    started = time.monotonic()
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert time.monotonic() - started < 1.2
    _assert_provider_error(response, status=504, code="provider_timeout")


def test_a_refused_api_key_is_502_and_the_key_is_never_echoed(client, fake_stripe, stripe_config, auth):
    fake_stripe.fail_next(
        "/v1/customers",
        401,
        {"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {STRIPE_KEY}"}},
    )
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    _assert_provider_error(response, mentions="API key")


def test_stripe_without_an_api_key_is_503(client, seeded, fake_stripe, auth):
    with seeded.begin() as session:
        credentials.get_provider(session, "stripe").api_key = None
    response = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers=auth())
    assert response.status_code == 503
    assert response.json["error"]["code"] == "not_configured"
    assert fake_stripe.requests == []


# -- the caller's account ---------------------------------------------------------------------


def test_account_shows_the_callers_balance_subscription_and_ledger_only(client, seeded, now, auth):
    with seeded.begin() as session:
        for account_id in ("acct_1", "acct_2"):
            session.add(Account(id=account_id))
        session.flush()
        session.add(
            Subscription(
                account_id="acct_1",
                provider="stripe",
                provider_subscription_id="sub_1",
                plan_id="growth",
                status="active",
            )
        )
        for account_id, credits in (("acct_1", 500), ("acct_2", 9_999)):
            ledger.grant_credits(
                session,
                Outcome(),
                account_id=account_id,
                credits=credits,
                kind=ledger.GRANT_PURCHASE,
                description="Value credit package",
                idempotency_key=f"test:{account_id}",
                at=now,
            )
    response = client.get("/api/v1/billing/account", headers=auth("acct_1", email="ada@example.com"))
    assert response.status_code == 200
    body = response.json
    assert (body["id"], body["email"], body["balance"]) == ("acct_1", "ada@example.com", 500)
    assert body["subscription"]["plan_id"] == "growth" and body["subscription"]["status"] == "active"
    assert body["ledger"] == [
        {"at": now.isoformat(), "amount": 500, "kind": "purchase_grant", "description": "Value credit package"}
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/billing/account"),
        ("post", "/api/v1/billing/stripe/checkout"),
        ("post", "/api/v1/billing/stripe/credit-checkout"),
        ("post", "/api/v1/billing/stripe/billing-portal"),
    ],
)
def test_account_endpoints_need_a_bearer_token(client, method, path):
    response = getattr(client, method)(path, json={"plan_id": "growth", "package_id": "pro"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused_before_any_provider_call(client, settings, fake_stripe, stripe_config):
    token = issue_token(settings, "acct_1", ttl=timedelta(minutes=-5))
    response = client.post(
        "/api/v1/billing/stripe/checkout", json={"plan_id": "growth"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_expired"
    assert fake_stripe.requests == []


# -- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_documents_every_billing_route_and_nothing_else(app, client):
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    assert document.json["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document.json["paths"].items() for method in ops}
    routed = {
        (re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("billing_api.")
        or (rule.endpoint.startswith(("manual_payments.", "invoices.")) and rule.rule.startswith("/api/v1/billing/"))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_openapi_references_resolve(client):
    document = client.get("/api/v1/openapi.json").json
    text = str(document)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in document["components"]["schemas"], name


# -- the README's flow ------------------------------------------------------------------------


def test_readme_flow_token_then_checkout_then_signed_webhook_then_balance(
    client, seeded, fake_stripe, stripe_config, auth, enqueued, now
):
    headers = auth("acct_demo", email="ada@example.com")
    started = client.post("/api/v1/billing/stripe/checkout", json={"plan_id": "starter"}, headers=headers)
    assert started.status_code == 200
    form = _form(fake_stripe, "/v1/checkout/sessions")
    # The buyer pays on Stripe's page; Stripe then delivers checkout.session.completed for that session.
    completed = se.checkout_session(
        account_id=form["metadata[account_id]"],
        mode="subscription",
        plan_id=form["metadata[plan_id]"],
        customer=form["customer"],
        session_id=started.json["session_id"],
    )
    body, signed_headers = se.signed(se.event("checkout.session.completed", completed), TEST_WEBHOOK_SECRET)
    assert client.post("/webhooks/stripe", data=body, headers=signed_headers).status_code == 200
    assert processing.process_event(seeded, enqueued[0], clock=lambda: now).outcome == processing.DONE
    account = client.get("/api/v1/billing/account", headers=headers).json
    assert account["balance"] == 5_000
    assert (account["subscription"]["plan_id"], account["subscription"]["status"]) == ("starter", "active")
    assert account["has_stripe_customer"] is True


def test_concurrent_first_checkouts_share_one_stripe_customer(app, seeded, fake_stripe, stripe_config, auth):
    headers = auth("acct_race", email="race@example.com")
    barrier = threading.Barrier(4)

    def checkout(_):
        barrier.wait()
        return app.test_client().post(
            "/api/v1/billing/stripe/credit-checkout", json={"package_id": "value"}, headers=headers
        )

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(checkout, range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    customers = {c.form["customer"] for c in fake_stripe.calls("POST", "/v1/checkout/sessions")}
    with seeded() as session:
        assert customers == {session.get(Account, "acct_race").stripe_customer_id}
