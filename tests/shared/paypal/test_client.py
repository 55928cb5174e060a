"""The PayPal client against a local stand-in: token cache and refresh, headers, error mapping."""

from __future__ import annotations

import time

import pytest

from shared.errors import NotConfigured
from shared.models import IntegrationProvider
from shared.paypal import client as paypal
from shared.paypal.client import PayPalError, PayPalGateway, PayPalTimeout
from shared.paypal.tokens import TokenCache
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET, INSTRUMENT_DECLINED, INTERNAL_SERVER_ERROR, FakePayPal


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake():
    server = FakePayPal().start()
    yield server
    server.stop()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client(fake, clock):
    return PayPalGateway(CLIENT_ID, CLIENT_SECRET, base_url=fake.url, tokens=TokenCache(clock), timeout=2)


def _order(client: PayPalGateway, request_id: str = "req-1") -> dict:
    return client.create_order(
        amount_cents=2999,
        currency="usd",
        custom_id="acct_1:value",
        description="Value credit package",
        return_url="http://localhost:3000/billing/paypal/return",
        cancel_url="http://localhost:3000/billing",
        request_id=request_id,
    )


def test_token_is_reused_until_shortly_before_it_expires(client, fake, clock):
    _order(client, "r1")
    _order(client, "r2")
    assert len(fake.tokens_issued) == 1

    clock.now += 32400 - 61  # PayPal's expires_in, less than the refresh margin
    _order(client, "r3")
    assert len(fake.tokens_issued) == 1
    clock.now += 2
    _order(client, "r4")
    assert len(fake.tokens_issued) == 2
    [first, *_, last] = fake.calls("POST", "/v2/checkout/orders")
    assert first.header("Authorization") == f"Bearer {fake.tokens_issued[0]}"
    assert last.header("Authorization") == f"Bearer {fake.tokens_issued[1]}"


def test_a_revoked_token_is_replaced_once(client, fake):
    _order(client, "r1")
    fake.tokens_issued.clear()  # PayPal no longer accepts it

    assert _order(client, "r2")["id"]
    assert len(fake.calls("POST", "/v1/oauth2/token")) == 2


def test_create_order_sends_paypals_amount_and_the_request_id(client, fake):
    order = _order(client, "billhook-order-1")

    [call] = fake.calls("POST", "/v2/checkout/orders")
    assert call.header("PayPal-Request-Id") == "billhook-order-1"
    unit = call.json["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "USD", "value": "29.99"}
    assert unit["custom_id"] == "acct_1:value"
    assert call.json["intent"] == "CAPTURE"
    assert paypal.approve_url(order).startswith("https://www.sandbox.paypal.com/checkoutnow?token=")


def test_wrong_credentials_are_a_non_retryable_error_without_the_secret(fake, clock):
    bad = PayPalGateway(CLIENT_ID, "wrong-secret", base_url=fake.url, tokens=TokenCache(clock))
    with pytest.raises(PayPalError) as raised:
        _order(bad)
    assert not raised.value.retryable and raised.value.status == 401
    assert "wrong-secret" not in str(raised.value) and "wrong-secret" not in repr(bad)


def test_server_errors_are_retryable_and_refusals_are_not(client, fake):
    order_id = fake.add_order(custom_id="acct_1:value")
    fake.fail_next("/v2/checkout/orders", 500, INTERNAL_SERVER_ERROR)
    with pytest.raises(PayPalError) as server_error:
        client.capture_order(order_id, request_id="c1")
    assert server_error.value.retryable and server_error.value.status == 500

    fake.fail_next("/v2/checkout/orders", 422, INSTRUMENT_DECLINED)
    with pytest.raises(PayPalError) as refused:
        client.capture_order(order_id, request_id="c2")
    assert (refused.value.retryable, refused.value.issue) == (False, "INSTRUMENT_DECLINED")
    assert refused.value.debug_id == "f1e2d3c4b5a69"


def test_a_timeout_is_retryable(fake, clock):
    slow = PayPalGateway(CLIENT_ID, CLIENT_SECRET, base_url=fake.url, tokens=TokenCache(clock), timeout=0.2)
    slow.access_token()
    fake.stall_next("/v2/checkout/orders", 1.0)
    with pytest.raises(PayPalError) as raised:
        slow.get_order("5O123")
    assert raised.value.retryable and "timed out" in raised.value.message


def test_the_token_request_and_the_call_share_one_time_bound(fake, clock):
    slow = PayPalGateway(CLIENT_ID, CLIENT_SECRET, base_url=fake.url, tokens=TokenCache(clock), timeout=0.5)
    fake.stall_next("/v1/oauth2/token", 0.35)  # answered, but with most of the budget spent
    fake.stall_next("/v2/checkout/orders", 2.0)
    started = time.monotonic()
    with pytest.raises(PayPalTimeout):
        slow.get_order("5O123")
    assert time.monotonic() - started < 0.7  # unbounded in total: 0.35 s + 0.5 s


def test_an_id_that_is_not_paypals_is_refused_without_a_request(client, fake):
    with pytest.raises(PayPalError) as raised:
        client.get_order("../v1/oauth2/token")
    assert raised.value.status == 404
    assert fake.calls("GET") == []


def test_base_url_comes_from_settings_then_endpoint_then_sandbox_or_live(settings):
    provider = IntegrationProvider(name="paypal", api_key="id", api_secret="s", sandbox=True, config={})
    assert PayPalGateway.from_provider(provider, settings).base_url == paypal.SANDBOX_API_BASE
    provider.sandbox = False
    assert PayPalGateway.from_provider(provider, settings).base_url == paypal.LIVE_API_BASE
    provider.endpoint = "https://paypal.internal.example"
    assert PayPalGateway.from_provider(provider, settings).base_url == "https://paypal.internal.example"
    local = settings.with_overrides(paypal_api_base="http://127.0.0.1:9/")
    assert PayPalGateway.from_provider(provider, local).base_url == "http://127.0.0.1:9"
    with pytest.raises(NotConfigured):
        PayPalGateway.from_provider(IntegrationProvider(name="paypal", api_key="id"), settings)
