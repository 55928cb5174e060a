"""The intake benchmark's lean reference: the same durable intake as billhook's, written as plainly
as it can be on the same stack (Flask under the same gunicorn settings), so the run measures how
close billhook's request path is to the limit of this shape.

Per webhook: Stripe's signature check on the raw bytes, `json.loads`, one
`INSERT ... ON CONFLICT DO NOTHING RETURNING id` on a per-thread autocommit psycopg connection
(committed before the answer), the new id handed to a publisher thread that LPUSHes what has
gathered in one pipeline, one log line. What it leaves out, and billhook keeps: the strict JSON
checks, the handled-type lookup, the dropped-connection retry, the broker breaker, metrics.
PostgreSQL only (DATABASE_URL); the queue is BILLHOOK_QUEUE on REDIS_URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
from datetime import UTC, datetime

import psycopg
import redis
import stripe
from flask import Flask, jsonify, request
from sqlalchemy.engine import make_url

log = logging.getLogger("bench.lean")
# The line is written, as billhook's request line is (gunicorn configures only its own loggers:
# without a handler at INFO the reference's "one log line" would cost nothing).
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = Flask(__name__)

DSN = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql").render_as_string(hide_password=False)
SECRET = os.environ["HARNESS_WEBHOOK_SECRET"]  # the harness's secret (billhook reads its own from the store)
_QUEUE = os.environ.get("BILLHOOK_QUEUE", "billhook")
INSERT = (
    "INSERT INTO webhook_events (provider, event_id, type, payload, event_created_at, received_at, updated_at,"
    " status, attempts) VALUES ('stripe', %s, %s, %s, %s, %s, %s, 'received', 0)"
    " ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"
)
_local = threading.local()
published_ids: queue.SimpleQueue[int] = queue.SimpleQueue()


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = psycopg.connect(DSN, autocommit=True)
    return connection


def publish_forever() -> None:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    while True:
        batch = [published_ids.get()]
        while True:
            try:
                batch.append(published_ids.get_nowait())
            except queue.Empty:
                break
        with contextlib.suppress(redis.RedisError):  # the rows are committed: a sweeper would queue them
            client.lpush(_QUEUE, *batch)


_publisher_started = threading.Lock()
_publisher: threading.Thread | None = None


def _hand_over(pk: int) -> None:
    global _publisher
    if _publisher is None:
        with _publisher_started:
            if _publisher is None:
                _publisher = threading.Thread(target=publish_forever, daemon=True)
                _publisher.start()
    published_ids.put(pk)


@app.post("/webhooks/stripe")
def lean_webhook():
    raw = request.get_data(cache=False)
    try:
        stripe.WebhookSignature.verify_header(raw, request.headers.get("Stripe-Signature", ""), SECRET, 300)
        event = json.loads(raw)
    except (stripe.SignatureVerificationError, ValueError):
        return jsonify({"error": {"code": "bad_request"}}), 400
    now = datetime.now(UTC)
    created = datetime.fromtimestamp(event["created"], UTC) if event.get("created") else None
    with _connection().cursor() as cursor:
        cursor.execute(INSERT, (event["id"], event["type"], raw.decode(), created, now, now))
        row = cursor.fetchone()
    if row is not None:
        _hand_over(row[0])
    log.info("webhook %s %s", event["id"], "accepted" if row else "duplicate")
    return jsonify({"received": True, "duplicate": row is None, "status": "received"}), 200
