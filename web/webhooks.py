"""Webhook intake: verify the signature on the raw bytes, store the event, commit, enqueue its
id, answer 2xx. Nothing here knows how an event is handled."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import stripe
from flask import Blueprint, jsonify, request

from shared import inbox
from shared.db import JsonText
from shared.handlers import is_handled
from shared.logs import log_line
from web.context import billhook
from web.errors import ApiError
from web.metrics import note_webhook

log = logging.getLogger("billhook.web")

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    raw = request.get_data(cache=False)
    event, body = _verified_stripe_event(raw, request.headers.get("Stripe-Signature"))
    response = accept_event(
        provider="stripe",
        event_id=event["id"],
        event_type=event["type"],
        payload=JsonText(body),  # the body as signed, not a re-serialization of it
        event_created_at=_created_at(event),
    )
    return jsonify(response), 200


def _verified_stripe_event(raw: bytes, header: str | None) -> tuple[dict, str]:
    """The parsed event and its body as text, once the signature over the raw bytes checks out."""
    if not header:
        raise ApiError(400, "missing_signature", "the Stripe-Signature header is missing")
    secrets = billhook().webhook_secrets.secrets_for("stripe")
    if not secrets:
        # Not the sender's fault: 503 makes Stripe retry once a secret is configured.
        raise ApiError(503, "not_configured", "no Stripe webhook secret is configured")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_body", "the body is not UTF-8") from exc
    stale = False
    for secret in secrets:  # several during a rotation
        try:
            stripe.WebhookSignature.verify_header(raw, header, secret, billhook().settings.webhook_tolerance_seconds)
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
    return _parse_event(raw), body


def _parse_event(raw: bytes) -> dict:
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise ApiError(400, "malformed_event", "the body is not an event (id and type are required)")
    if (
        not event["id"]
        or len(event["id"]) > 128
        or len(event["type"]) > 100
        or not (event["id"].isprintable() and event["type"].isprintable())  # PostgreSQL text refuses NUL
    ):
        raise ApiError(400, "malformed_event", "the event id or type is out of range")
    _created_at(event)
    return event


def _created_at(event: dict) -> datetime | None:
    """When Stripe created the event (it orders subscription changes); absent is allowed."""
    created = event.get("created")
    if created is None:
        return None
    if isinstance(created, bool) or not isinstance(created, int):
        raise ApiError(400, "malformed_event", "the event's created timestamp is not a number")
    try:
        return datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ApiError(400, "malformed_event", "the event's created timestamp is out of range") from exc


def accept_event(
    *, provider: str, event_id: str, event_type: str, payload: dict | JsonText, event_created_at: datetime | None
) -> dict:
    """Store, commit, then enqueue. A database failure propagates (503: the provider retries); a
    broker failure does not: the row stays `received` and the sweeper enqueues it."""
    ext = billhook()
    stored = ext.store_event(
        provider=provider,
        event_id=event_id,
        type=event_type,
        payload=payload,
        event_created_at=event_created_at,
        handled=is_handled(provider, event_type),
        at=datetime.now(UTC),
    )
    if stored.new and stored.status == inbox.RECEIVED:
        try:
            ext.enqueue(stored.id)
        except Exception as exc:
            log_line(
                log,
                "enqueue failed; the sweeper will retry",
                level=logging.WARNING,
                provider=provider,
                event=event_id,
                error=type(exc).__name__,
            )
    # Counted, and logged on the request's one line (web/metrics.py), when the answer is sent.
    note_webhook(provider, event_type, "accepted" if stored.new else "duplicate", event_id)
    return {"received": True, "duplicate": not stored.new, "status": stored.status}
