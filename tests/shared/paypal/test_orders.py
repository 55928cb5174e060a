"""Capturing approved orders the browser did not come back for, against a local PayPal stand-in:
one capture per order (one PayPal-Request-Id), one grant whichever path records first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared import credentials, processing
from shared.billing import ledger
from shared.errors import PermanentError
from shared.models import Payment, WebhookEvent
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from shared.paypal.client import PayPalError, PayPalGateway
from tests.factories import paypal_events as pe
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET, INSTRUMENT_DECLINED, INTERNAL_SERVER_ERROR
from tests.shared.paypal.handlers.support import run

ACCOUNT = "acct_pp"
GRACE, WINDOW = 60, 72 * 3600


@pytest.fixture
def pp_settings(settings, fake_paypal):
    return settings.with_overrides(paypal_api_base=fake_paypal.url)


@pytest.fixture
def configured(seeded):
    with seeded.begin() as session:
        credentials.set_provider(session, "paypal", api_key=CLIENT_ID, api_secret=CLIENT_SECRET, webhook_id="WH1")
    return seeded


def approve(session_factory, fake, now) -> tuple[int, str]:
    """The buyer approved an order billhook created; its APPROVED event is handled."""
    order_id = fake.add_order(custom_id=paypal_orders.order_custom_id(ACCOUNT, "starter"), value="9.99")
    evt = pe.event("CHECKOUT.ORDER.APPROVED", fake.orders[order_id] | {"status": "APPROVED"})
    result = run(session_factory, evt, now)
    assert result.outcome == processing.DONE
    with session_factory() as session:
        return session.query(WebhookEvent).filter_by(event_id=evt["id"]).one().id, order_id


def awaiting(session_factory, at) -> list[int]:
    with session_factory() as session:
        return paypal_orders.orders_awaiting_capture(session, now=at, grace_seconds=GRACE, window_seconds=WINDOW)


def capture(session_factory, settings, event_pk, at) -> str:
    return paypal_orders.capture_approved_order(session_factory, settings, event_pk, clock=lambda: at)


def balance(session_factory) -> int:
    with session_factory() as session:
        return ledger.balance(session, ACCOUNT)


def payments(session_factory) -> list[Payment]:
    with session_factory() as session:
        return list(session.query(Payment))


def test_approved_order_awaits_capture_only_after_the_grace_and_within_the_window(configured, fake_paypal, now):
    event_pk, _ = approve(configured, fake_paypal, now)

    assert awaiting(configured, now + timedelta(seconds=GRACE - 1)) == []
    assert awaiting(configured, now + timedelta(seconds=GRACE + 1)) == [event_pk]
    assert awaiting(configured, now + timedelta(seconds=WINDOW + 1)) == []


def test_uncaptured_order_is_captured_once_and_granted(configured, pp_settings, fake_paypal, now):
    event_pk, order_id = approve(configured, fake_paypal, now)
    later = now + timedelta(minutes=2)

    assert capture(configured, pp_settings, event_pk, later) == "succeeded"
    assert capture(configured, pp_settings, event_pk, later) == "already_recorded"

    [call] = fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture")
    assert call.header("PayPal-Request-Id") == paypal_orders.capture_request_id(order_id)
    assert balance(configured) == 500
    [payment] = payments(configured)
    assert (payment.provider_payment_id, payment.status) == (order_id, "succeeded")
    assert awaiting(configured, later) == []


def test_capture_racing_the_browser_return_is_one_capture_and_one_grant(configured, pp_settings, fake_paypal, now):
    event_pk, order_id = approve(configured, fake_paypal, now)
    client = PayPalGateway.from_provider(_provider(configured), pp_settings)
    # The capture endpoint's PayPal call went through, its transaction has not committed yet.
    browser = client.capture_order(order_id, request_id=paypal_orders.capture_request_id(order_id))

    assert capture(configured, pp_settings, event_pk, now) == "succeeded"
    with configured.begin() as session:
        late = paypal_orders.grant_capture(session, Outcome(), paypal_orders.CaptureResult.from_order(browser), at=now)
    assert late.credits_granted_now == 0

    assert balance(configured) == 500
    assert len(payments(configured)) == 1
    captures = fake_paypal.calls("POST", f"/v2/checkout/orders/{order_id}/capture")
    assert {c.header("PayPal-Request-Id") for c in captures} == {paypal_orders.capture_request_id(order_id)}


def test_order_captured_under_another_request_id_is_read_back_and_granted(configured, pp_settings, fake_paypal, now):
    event_pk, order_id = approve(configured, fake_paypal, now)
    client = PayPalGateway.from_provider(_provider(configured), pp_settings)
    client.capture_order(order_id, request_id="someone-else")

    assert capture(configured, pp_settings, event_pk, now) == "succeeded"
    assert fake_paypal.calls("GET", f"/v2/checkout/orders/{order_id}")
    assert balance(configured) == 500


def test_declined_instrument_ends_attempts_with_a_failed_payment(configured, pp_settings, fake_paypal, now):
    event_pk, order_id = approve(configured, fake_paypal, now)
    fake_paypal.fail_next(f"/v2/checkout/orders/{order_id}/capture", 422, INSTRUMENT_DECLINED)

    assert capture(configured, pp_settings, event_pk, now) == "failed"

    [payment] = payments(configured)
    assert payment.status == "failed" and "INSTRUMENT_DECLINED" in payment.failure_message
    assert balance(configured) == 0
    assert awaiting(configured, now + timedelta(minutes=5)) == []


def test_paypal_outage_leaves_the_order_for_the_next_sweep(configured, pp_settings, fake_paypal, now):
    event_pk, order_id = approve(configured, fake_paypal, now)
    fake_paypal.fail_next(f"/v2/checkout/orders/{order_id}/capture", 500, INTERNAL_SERVER_ERROR)

    with pytest.raises(PayPalError) as raised:
        capture(configured, pp_settings, event_pk, now)
    assert raised.value.retryable
    assert payments(configured) == []
    assert awaiting(configured, now + timedelta(minutes=5)) == [event_pk]

    assert capture(configured, pp_settings, event_pk, now) == "succeeded"
    assert balance(configured) == 500


def test_capture_webhook_after_the_task_grants_nothing_more(configured, pp_settings, fake_paypal, now):
    event_pk, order_id = approve(configured, fake_paypal, now)
    capture(configured, pp_settings, event_pk, now)
    captured = fake_paypal.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]
    webhook = pe.event(
        "PAYMENT.CAPTURE.COMPLETED", captured | {"supplementary_data": {"related_ids": {"order_id": order_id}}}
    )

    run(configured, webhook, now)

    assert balance(configured) == 500
    assert len(payments(configured)) == 1


def test_custom_id_round_trips_and_rejects_what_is_not_ours():
    assert paypal_orders.parse_custom_id(paypal_orders.order_custom_id("acct:with:colons", "pro")) == (
        "acct:with:colons",
        "pro",
    )
    with pytest.raises(ValueError):
        paypal_orders.order_custom_id("a" * 127, "pro")
    for foreign in (None, "", "nocolon", ":pro", "acct:"):
        with pytest.raises(PermanentError):
            paypal_orders.parse_custom_id(foreign)


def _provider(session_factory):
    with session_factory() as session:
        provider = credentials.get_provider(session, "paypal")
        session.expunge(provider)
        return provider
