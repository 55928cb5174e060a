"""Stripe's webhook verification: the `Stripe-Signature` header (HMAC-SHA256 over `t.` + the raw
body) against each configured secret (several during a rotation), its timestamp within the
tolerance on both sides: an old one is a replay, one from the future a forged or broken clock."""

from __future__ import annotations

import time

import stripe

from shared.config import Settings
from web.context import billhook
from web.errors import ApiError


def verify(raw: bytes, header: str | None) -> None:
    ext = billhook()
    secrets = ext.webhook_secrets.secrets_for("stripe") if header else []  # no store read for a 400
    check(raw, header, secrets, ext.settings)


def check(raw: bytes, header: str | None, secrets: list[str], settings: Settings) -> None:
    """The check itself, given the configured secrets: both intakes' (Flask's and the event
    loop's, which reads the secrets off the loop). A refusal is an ApiError."""
    if not header:
        raise ApiError(400, "missing_signature", "the Stripe-Signature header is missing")
    if not secrets:
        # Not the sender's fault: 503 makes Stripe retry once a secret is configured.
        raise ApiError(503, "not_configured", "no Stripe webhook secret is configured")
    try:
        raw.decode("utf-8")  # the library decodes it to check the signature
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_body", "the body is not UTF-8") from exc
    stale = False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(raw, header, secret, settings.webhook_tolerance_seconds)
            break
        except stripe.SignatureVerificationError as exc:
            # Remember a match with an old timestamp even when a later secret does not match at all.
            stale = stale or "tolerance" in str(exc).lower()
    else:
        raise ApiError(
            400,
            "stale_timestamp" if stale else "invalid_signature",
            "the signature timestamp is outside the tolerance" if stale else "the signature does not match the body",
        )
    # The library bounds the timestamp's age only; a signature dated ahead is refused too.
    if _timestamp(header) > time.time() + settings.webhook_future_tolerance_seconds:
        raise ApiError(400, "stale_timestamp", "the signature timestamp is in the future")


def _timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                break
    return 0  # unreachable once verify_header accepted the header: it requires t
