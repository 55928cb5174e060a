"""The signatures `billhook events send` and the tests make are the ones Stripe's library accepts."""

from __future__ import annotations

import time

import pytest
import stripe

from shared.stripe.signing import stripe_signature_header

SECRET = "whsec_signing_test_0123456789abcdef"


def test_a_signed_payload_verifies_with_the_stripe_library():
    payload = b'{"id": "evt_1", "type": "checkout.session.completed"}'

    assert stripe.WebhookSignature.verify_header(payload, stripe_signature_header(payload, SECRET), SECRET, 300)


def test_the_signature_covers_the_payload_and_the_timestamp():
    payload = b'{"id": "evt_1"}'
    header = stripe_signature_header(payload, SECRET, timestamp=int(time.time()) - 1000)

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload + b" ", header, SECRET, None)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(payload, header, SECRET, 300)
