"""`GET /metrics` (Prometheus text format) and the one structured log line per request.

The request line carries method, path, status and duration: the path without its query string
(a token can travel there) and never a header or a body; views add ids and outcomes to it with
`note_request` (a webhook's event id, type and outcome; an internal call's account).
"""

from __future__ import annotations

import logging
import time

import redis
from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from shared.logs import log_line
from shared.metrics import StoreCollector, exposition, record_webhook
from web.auth import require_static_token
from web.context import billhook

log = logging.getLogger("billhook.web.requests")

bp = Blueprint("metrics", __name__)

BROKER_TIMEOUT_SECONDS = 0.5
# Only these become a `provider` label: a bounded set, whatever paths clients try.
WEBHOOK_PROVIDERS = ("stripe", "paypal")


@bp.get("/metrics")
def metrics():
    ext = billhook()
    if ext.settings.metrics_token:
        require_static_token(ext.settings.metrics_token, what="metrics token")
    collector = StoreCollector(ext.session_factory, _queue_depth, queue_name=ext.settings.queue_name)
    return Response(exposition([collector]), mimetype=CONTENT_TYPE_LATEST)


def _queue_depth() -> int:
    settings = billhook().settings
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
    )
    try:
        return int(client.llen(settings.queue_name))
    finally:
        client.close()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_start_clock)
    app.after_request(_log_request)


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def note_request(**fields) -> None:
    """Fields for this request's one log line (ids, types, outcomes: never a payload or a secret)."""
    g.setdefault("log_fields", {}).update(fields)


def note_webhook(provider: str, event_type: str, outcome: str, event_id: str | None = None) -> None:
    """Intake says what became of a verified delivery; it is counted and logged when the answer is sent."""
    g.webhook = (provider, event_type, outcome)
    note_request(provider=provider, event=event_id, type=event_type, outcome=outcome)


def _log_request(response):
    started = g.get("request_started")
    _count_webhook(response.status_code, time.perf_counter() - started if started else 0.0)
    log_line(
        log,
        "request",
        method=request.method,
        path=request.path,
        endpoint=request.endpoint,
        status=response.status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        **g.get("log_fields", {}),
    )
    return response


def _count_webhook(status: int, seconds: float) -> None:
    noted = g.get("webhook")
    if noted is not None:
        count_webhook(noted[0], noted[1], noted[2], status, seconds)
        return
    parts = request.path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "webhooks" and parts[1] in WEBHOOK_PROVIDERS and request.method == "POST":
        count_webhook(parts[1], None, None, status, seconds)


def count_webhook(provider: str, event_type: str | None, outcome: str | None, status: int, seconds: float) -> None:
    """A delivery counted once its answer is sent (both intakes'): a verified one by its outcome, a
    refused one as rejected (4xx) or error (5xx), with its type when it was read."""
    if outcome is not None and status < 300:
        record_webhook(provider, event_type, outcome, seconds)
    else:
        record_webhook(provider, event_type, "rejected" if status < 500 else "error", seconds)
