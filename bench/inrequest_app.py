"""The in-request design, for the intake benchmark: what dj-stripe, Cashier and the SaaS's current
implementation do — verify the webhook, then run the event's handler inside the request on the
same store, then answer. Same gunicorn settings, same store and handlers as billhook's worker
(`processing.process_event`), so the comparison is the shape alone: the provider waits for the
database writes of every effect, and an event that arrives before the one it depends on is
answered 500 for the provider to retry, as those libraries do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import stripe
from flask import Flask, jsonify, request

from shared import inbox, processing
from shared.config import Settings
from shared.credentials import WebhookSecretCache
from shared.db import JsonText, make_engine, make_sessionmaker
from shared.dispatch import is_handled

app = Flask(__name__)
_settings = Settings.from_env()
_session_factory = make_sessionmaker(make_engine(_settings))
_secrets = WebhookSecretCache(_session_factory, ttl=_settings.provider_cache_seconds)


def _clock() -> datetime:
    return datetime.now(UTC)


@app.post("/webhooks/stripe")
def in_request_webhook():
    raw = request.get_data(cache=False)
    header = request.headers.get("Stripe-Signature", "")
    for secret in _secrets.secrets_for("stripe"):
        try:
            stripe.WebhookSignature.verify_header(raw, header, secret, _settings.webhook_tolerance_seconds)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        return jsonify({"error": {"code": "invalid_signature"}}), 400
    event = json.loads(raw)
    with _session_factory.begin() as session:
        stored = inbox.record_event(
            session,
            provider="stripe",
            event_id=event["id"],
            type=event["type"],
            payload=JsonText(raw.decode()),
            event_created_at=datetime.fromtimestamp(event["created"], UTC) if event.get("created") else None,
            handled=is_handled("stripe", event["type"]),
            at=_clock(),
        )
    try:
        result = processing.process_event(_session_factory, stored.id, clock=_clock)
    except Exception as exc:  # noqa: BLE001 - the provider retries on a 5xx, as in the libraries
        processing.record_failure(_session_factory, stored.id, exc, at=_clock(), retry_at=None)
        return jsonify({"error": {"code": "processing_failed"}}), 500
    return jsonify({"received": True, "outcome": result.outcome}), 200
