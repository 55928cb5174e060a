"""The PayPal side of `make chaos`: PayPal's verify-webhook-signature API stood in for locally
(tests/fakes/paypal_notifications.py, checking each delivery's SHA256withRSA signature against the
test certificate), the PayPal provider configured for `postback` verification against it, and each
delivery signed when it is sent, as PayPal signs. billhook's intake verifies PayPal deliveries the
way production's default does: one call to "PayPal" per delivery."""

from __future__ import annotations

from shared import credentials
from tests.factories import paypal_events as pe
from tests.factories.stripe_events import signed as stripe_signed
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.fakes.paypal_notifications import FakePayPalNotifications

PATHS = {"stripe": "/webhooks/stripe", "paypal": "/webhooks/paypal"}


def start_verifier() -> FakePayPalNotifications:
    return FakePayPalNotifications(pe.signing_cert(), {pe.WEBHOOK_ID}).start()


def configure(session_factory) -> None:
    with session_factory.begin() as session:
        credentials.set_provider(
            session,
            "paypal",
            api_key=CLIENT_ID,
            api_secret=CLIENT_SECRET,
            webhook_id=pe.WEBHOOK_ID,
            config={"verification": "postback"},
        )


def delivery(provider: str, evt: dict, stripe_secret: str) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of one delivery, signed now."""
    if provider == "paypal":
        body, headers = pe.signed(evt)
    else:
        body, headers = stripe_signed(evt, stripe_secret)
    return PATHS[provider], body, headers
