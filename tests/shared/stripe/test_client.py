"""The Stripe adapter against a local stand-in for api.stripe.com: what it sends, and how every
failure becomes one ProviderError."""

from __future__ import annotations

import pytest

from shared.errors import NotConfigured, ProviderError
from shared.models import IntegrationProvider
from shared.stripe.client import StripeGateway
from tests.fakes.stripe_api import API_ERROR, CARD_DECLINED

KEY = "sk_test_adapter_0123456789"


@pytest.fixture
def gateway(fake_stripe):
    return StripeGateway(KEY, api_base=fake_stripe.url, timeout=2, max_network_retries=0)


def _provider(**fields) -> IntegrationProvider:
    return IntegrationProvider(name="stripe", webhook_secrets=[], config={}, **fields)


def test_create_customer_sends_the_key_the_idempotency_key_and_the_account(gateway, fake_stripe):
    customer = gateway.create_customer(account_id="acct_1", email="a@example.com", name=None, idempotency_key="k-1")
    (call,) = fake_stripe.requests
    assert (call.method, call.path) == ("POST", "/v1/customers")
    assert call.header("Authorization") == f"Bearer {KEY}"
    assert call.header("Idempotency-Key") == "k-1"
    assert call.form == {"metadata[account_id]": "acct_1", "email": "a@example.com"}
    assert customer["object"] == "customer" and customer["id"].startswith("cus_")
    assert isinstance(customer, dict)


def test_checkout_session_carries_metadata_on_the_session_and_the_subscription(gateway, fake_stripe):
    session = gateway.create_checkout_session(
        mode="subscription",
        price_id="price_x",
        customer_id="cus_1",
        client_reference_id="acct_1",
        metadata={"account_id": "acct_1", "plan_id": "growth"},
        success_url="https://app.test/ok",
        cancel_url="https://app.test/no",
        idempotency_key="k-2",
    )
    form = fake_stripe.requests[0].form
    assert session["object"] == "checkout.session" and session["url"].startswith("https://checkout.stripe.com/")
    assert form["subscription_data[metadata][plan_id]"] == "growth"
    assert form["metadata[account_id]"] == "acct_1"
    assert "payment_intent_data[metadata][plan_id]" not in form


def test_changing_a_subscription_price_names_the_item_and_the_proration(gateway, fake_stripe):
    fake_stripe.add_subscription(subscription_id="sub_1", customer="cus_1", price_id="price_old")
    remote = gateway.retrieve_subscription("sub_1")
    item_id = remote["items"]["data"][0]["id"]
    updated = gateway.change_subscription_price(
        "sub_1",
        item_id=item_id,
        price_id="price_new",
        proration_behavior="none",
        metadata={"plan_id": "growth"},
        idempotency_key="k-3",
    )
    call = fake_stripe.calls("POST")[0]
    assert call.path == "/v1/subscriptions/sub_1" and call.header("Idempotency-Key") == "k-3"
    assert call.form["items[0][id]"] == item_id and call.form["proration_behavior"] == "none"
    assert updated["items"]["data"][0]["price"]["id"] == "price_new"


def test_a_declined_card_is_a_provider_error_with_stripes_user_message(gateway, fake_stripe):
    fake_stripe.fail_next("/v1/customers", 402, CARD_DECLINED)
    with pytest.raises(ProviderError) as raised:
        gateway.create_customer(account_id="a", email=None, name=None, idempotency_key="k")
    assert raised.value.provider == "stripe" and raised.value.status == 402 and not raised.value.retryable
    assert "Your card was declined." in raised.value.message


def test_a_missing_object_is_a_provider_error_naming_the_code(gateway):
    with pytest.raises(ProviderError) as raised:
        gateway.retrieve_subscription("sub_missing")
    assert raised.value.status == 404 and "resource_missing" in raised.value.message


def test_a_server_error_is_retryable(gateway, fake_stripe):
    fake_stripe.fail_next("/v1/customers", 503, API_ERROR)
    with pytest.raises(ProviderError) as raised:
        gateway.create_customer(account_id="a", email=None, name=None, idempotency_key="k")
    assert raised.value.retryable and raised.value.status == 503


def test_a_timeout_is_a_retryable_provider_error(fake_stripe):
    gateway = StripeGateway(KEY, api_base=fake_stripe.url, timeout=0.2, max_network_retries=0)
    fake_stripe.stall_next("/v1/customers", 1.0)
    with pytest.raises(ProviderError) as raised:
        gateway.create_customer(account_id="a", email=None, name=None, idempotency_key="k")
    assert raised.value.retryable and "timeout" in raised.value.message


def test_the_sdk_retries_a_server_error_with_the_same_idempotency_key(fake_stripe):
    gateway = StripeGateway(KEY, api_base=fake_stripe.url, timeout=2, max_network_retries=1)
    fake_stripe.fail_next("/v1/customers", 500, API_ERROR)
    customer = gateway.create_customer(account_id="a", email=None, name=None, idempotency_key="k-retry")
    assert customer["id"].startswith("cus_")
    assert [c.header("Idempotency-Key") for c in fake_stripe.requests] == ["k-retry", "k-retry"]


def test_a_refused_key_never_appears_in_the_error(gateway, fake_stripe):
    fake_stripe.fail_next(
        "/v1/customers",
        401,
        {"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {KEY}"}},
    )
    with pytest.raises(ProviderError) as raised:
        gateway.create_customer(account_id="a", email=None, name=None, idempotency_key="k")
    assert KEY not in str(raised.value) and "sk_test" not in str(raised.value)


def test_the_key_and_base_url_come_from_the_providers_table_and_settings_override_the_url(settings, fake_stripe):
    from_endpoint = StripeGateway.from_provider(_provider(api_key=KEY, endpoint=fake_stripe.url), settings)
    from_endpoint.create_customer(account_id="a", email=None, name=None, idempotency_key="k-a")
    overridden = StripeGateway.from_provider(
        _provider(api_key=KEY, endpoint="http://127.0.0.1:9"), settings.with_overrides(stripe_api_base=fake_stripe.url)
    )
    overridden.create_customer(account_id="b", email=None, name=None, idempotency_key="k-b")
    assert len(fake_stripe.requests) == 2


@pytest.mark.parametrize("provider", [None, _provider(api_key=None)])
def test_no_api_key_is_not_configured(settings, provider):
    with pytest.raises(NotConfigured):
        StripeGateway.from_provider(provider, settings)


def test_cancel_now_deletes_the_subscription_and_refund_names_the_payment_intent_or_charge(gateway, fake_stripe):
    fake_stripe.add_subscription(subscription_id="sub_9", customer="cus_9", price_id="price_x")
    fake_stripe.add_charge("pi_9", 19900)
    fake_stripe.add_charge("ch_9", 999)

    canceled = gateway.cancel_subscription_now("sub_9")
    by_intent = gateway.refund("pi_9", idempotency_key="k-r1")
    by_charge = gateway.refund("ch_9", idempotency_key="k-r2")

    assert canceled["status"] == "canceled" and fake_stripe.calls("DELETE")[0].path == "/v1/subscriptions/sub_9"
    first, second = fake_stripe.calls("POST", "/v1/refunds")
    assert (first.form, first.header("Idempotency-Key")) == ({"payment_intent": "pi_9"}, "k-r1")
    assert second.form == {"charge": "ch_9"}
    assert (by_intent["amount"], by_charge["amount"]) == (19900, 999)


def test_refunding_an_unknown_payment_is_a_provider_error_naming_the_code(gateway):
    with pytest.raises(ProviderError) as raised:
        gateway.refund("pi_unknown", idempotency_key="k-r3")
    assert raised.value.status == 404 and "resource_missing" in raised.value.message
