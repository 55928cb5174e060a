"""PayPal webhook intake: verify the delivery (postback or offline, per the provider's config), then
the same durable inbox path as Stripe (`accept_event`): stored once, committed, enqueued, 2xx."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from flask import Blueprint, Flask, current_app, jsonify, request

from shared.credentials import active_provider
from shared.errors import NotConfigured
from shared.logs import log_line
from shared.providers import paypal_webhooks as verify
from shared.providers.paypal import PayPalClient
from web.context import billhook
from web.errors import ApiError
from web.webhooks import accept_event

log = logging.getLogger("billhook.web")

bp = Blueprint("paypal_webhooks", __name__)

CERTS_EXTENSION = "billhook.paypal_certs"


def certificate_cache(app: Flask) -> verify.CertificateCache:
    """The app's PayPal certificate cache (tests swap in one with a local fetcher)."""
    return app.extensions.setdefault(CERTS_EXTENSION, verify.CertificateCache())


@bp.post("/webhooks/paypal")
def paypal_webhook():
    raw = request.get_data(cache=False)
    _verify(raw)
    event = _parse_event(raw)
    response = accept_event(
        provider="paypal",
        event_id=event["id"],
        event_type=event["event_type"],
        payload=event,
        event_created_at=_created_at(event.get("create_time")),
    )
    return jsonify(response), 200


def _verify(raw: bytes) -> None:
    ext = billhook()
    with ext.session_factory() as session:
        provider = active_provider(session, "paypal")
        if provider is not None:
            session.expunge(provider)
    if provider is None or not provider.webhook_id:
        # Not the sender's fault: 503 makes PayPal retry once a webhook id is configured.
        raise ApiError(503, "not_configured", "no PayPal webhook id is configured")
    config = provider.config or {}
    method = config.get("verification", verify.POSTBACK)
    try:
        tolerance = int(config.get("tolerance_seconds", ext.settings.webhook_tolerance_seconds))
    except (TypeError, ValueError) as exc:
        raise ApiError(503, "not_configured", "the PayPal tolerance_seconds setting is not a number") from exc
    now = datetime.now(UTC)
    try:
        if method == verify.OFFLINE:
            verify.verify_offline(
                raw,
                request.headers,
                webhook_id=provider.webhook_id,
                certs=certificate_cache(current_app),
                now=now,
                tolerance_seconds=tolerance,
            )
        elif method == verify.POSTBACK:
            verify.verify_postback(
                raw,
                request.headers,
                webhook_id=provider.webhook_id,
                client=PayPalClient.from_provider(provider, ext.settings),
                now=now,
                tolerance_seconds=tolerance,
            )
        else:
            raise ApiError(503, "not_configured", "the PayPal verification method is not postback or offline")
    except verify.SignatureError as exc:
        log_line(log, "webhook refused", level=logging.WARNING, provider="paypal", reason=exc.code)
        raise ApiError(400, exc.code, exc.message) from exc
    except NotConfigured as exc:
        raise ApiError(503, "not_configured", "PayPal client credentials are not configured") from exc
    except verify.VerifierUnavailable as exc:
        log_line(log, "webhook verifier unavailable", level=logging.WARNING, provider="paypal", error=str(exc))
        raise ApiError(503, "verifier_unavailable", "the signature could not be checked now; retry later") from exc


def _parse_event(raw: bytes) -> dict:
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from exc
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("event_type"), str)
        or not isinstance(event.get("resource"), dict)
    ):
        raise ApiError(400, "malformed_event", "the body is not an event (id, event_type and resource are required)")
    if not event["id"] or len(event["id"]) > 128 or not event["event_type"] or len(event["event_type"]) > 100:
        raise ApiError(400, "malformed_event", "the event id or type is out of range")
    return event


def _created_at(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        created = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)
