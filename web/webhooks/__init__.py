"""Webhook intake, one path for every provider: verify the signature on the raw bytes (one module
per provider), parse the body strictly (events.py), store the event, commit, enqueue its id,
answer 2xx. Nothing here knows how an event is handled."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, jsonify, request

from shared.db import JsonText
from shared.dispatch import is_handled
from shared.logs import log_line
from shared.models.events import EventStatus
from web.context import billhook
from web.json import read_body
from web.metrics import note_webhook
from web.webhooks import paypal, stripe
from web.webhooks.events import iso_time, parse_event, unix_time

log = logging.getLogger("billhook.web")

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    raw = read_body()
    stripe.verify(raw, request.headers.get("Stripe-Signature"))
    event = parse_event(raw, type_field="type")
    return _accept(raw, "stripe", event["id"], event["type"], unix_time(event.get("created")))


@bp.post("/webhooks/paypal")
def paypal_webhook():
    raw = read_body()
    paypal.verify(raw)
    event = parse_event(raw, type_field="event_type")
    return _accept(raw, "paypal", event["id"], event["event_type"], iso_time(event.get("create_time")))


def _accept(raw: bytes, provider: str, event_id: str, event_type: str, created_at: datetime | None):
    """Store, commit, then enqueue. A database failure propagates (503: the provider retries); a
    broker failure does not: the row stays `received` and the sweeper enqueues it."""
    ext = billhook()
    stored = ext.store_event(
        provider=provider,
        event_id=event_id,
        type=event_type,
        payload=JsonText(raw.decode("utf-8")),  # the body as signed, not a re-serialization of it
        event_created_at=created_at,
        handled=is_handled(provider, event_type),
        at=datetime.now(UTC),
    )
    if stored.new and stored.status == EventStatus.RECEIVED:
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
    return jsonify({"received": True, "duplicate": not stored.new, "status": stored.status}), 200
