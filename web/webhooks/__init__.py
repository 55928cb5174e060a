"""Webhook intake, one path for every provider: verify the signature on the raw bytes (one module
per provider), parse the body strictly (events.py), store the event, commit, enqueue its id,
answer 2xx. Nothing here knows how an event is handled.

Two servers run this intake with the same pieces: the Flask routes below (the web app under
gunicorn) and the event loop's (asgi.py, the Procfile's `intake:` process, where providers' webhook
URLs point); `read_delivery`, `stored_fields`, `hand_over` and `answer` are what both do."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, jsonify, request

from shared import inbox
from shared.db import JsonText
from shared.dispatch import is_handled
from shared.logs import log_line
from shared.models.events import EventStatus
from web.context import Billhook, billhook
from web.json import read_body
from web.metrics import note_webhook
from web.webhooks import paypal, stripe
from web.webhooks.events import Delivery, read_delivery

log = logging.getLogger("billhook.web")

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    raw = read_body()
    stripe.verify(raw, request.headers.get("Stripe-Signature"))
    return _accept(raw, read_delivery("stripe", raw))


@bp.post("/webhooks/paypal")
def paypal_webhook():
    raw = read_body()
    paypal.verify(raw)
    return _accept(raw, read_delivery("paypal", raw))


def _accept(raw: bytes, delivery: Delivery):
    """Store, commit, then enqueue. A database failure propagates (503: the provider retries); a
    broker failure does not: the row stays `received` and the sweeper enqueues it."""
    ext = billhook()
    stored = ext.store_event(**stored_fields(raw, delivery))
    hand_over(ext, stored, delivery)
    # Counted, and logged on the request's one line (web/metrics.py), when the answer is sent.
    note_webhook(delivery.provider, delivery.type, outcome(stored), delivery.event_id)
    return jsonify(answer(stored)), 200


def stored_fields(raw: bytes, delivery: Delivery) -> dict:
    """`inbox.record_event`'s fields for a verified delivery (both intakes')."""
    return {
        "provider": delivery.provider,
        "event_id": delivery.event_id,
        "type": delivery.type,
        "payload": JsonText(raw.decode("utf-8")),  # the body as signed, not a re-serialization of it
        "event_created_at": delivery.created_at,
        "handled": is_handled(delivery.provider, delivery.type),
        "at": datetime.now(UTC),
    }


def hand_over(ext: Billhook, stored: inbox.Stored, delivery: Delivery) -> None:
    """A newly stored event to the publisher (both intakes'): its failure is logged, not raised,
    since the row is committed and the sweeper enqueues it."""
    if not (stored.new and stored.status == EventStatus.RECEIVED):
        return
    try:
        ext.enqueue(stored.id)
    except Exception as exc:
        log_line(
            log,
            "enqueue failed; the sweeper will retry",
            level=logging.WARNING,
            provider=delivery.provider,
            event=delivery.event_id,
            error=type(exc).__name__,
        )


def outcome(stored: inbox.Stored) -> str:
    """The delivery's outcome as the request line and the webhook metrics name it (both intakes')."""
    return "accepted" if stored.new else "duplicate"


def answer(stored: inbox.Stored) -> dict:
    """The 200's body: whether the delivery was new, and the event's status."""
    return {"received": True, "duplicate": not stored.new, "status": stored.status}
