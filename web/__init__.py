"""The thin Flask app: webhook intake and the APIs the frontend calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask

from shared.config import Settings
from shared.logs import log_line
from web import (
    billing_api,
    errors,
    health,
    internal_accounts,
    internal_api,
    invoices,
    manual_payments,
    metrics,
    openapi,
    ops,
    webhooks,
)
from web.context import Billhook
from web.json import IsoJSONProvider
from worker.publisher import Publisher, publishing_celery


def create_app(
    settings: Settings | None = None,
    *,
    enqueue: Callable[[int], None] | None = None,
    enqueue_email: Callable[[int], None] | None = None,
    enqueue_delivery: Callable[[int], None] | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    if enqueue is None or enqueue_email is None:
        publisher = _celery_publisher(settings)
        enqueue = publisher.publish_event if enqueue is None else enqueue
        enqueue_email = publisher.publish_email if enqueue_email is None else enqueue_email
        enqueue_delivery = publisher.publish_delivery if enqueue_delivery is None else enqueue_delivery
    app = Flask(__name__)
    app.json = IsoJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    app.extensions["billhook"] = Billhook(settings, enqueue, enqueue_email, enqueue_delivery)

    errors.register(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(internal_api.bp)
    app.register_blueprint(internal_accounts.bp)
    app.register_blueprint(billing_api.bp)
    app.register_blueprint(manual_payments.bp)
    app.register_blueprint(invoices.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(health.bp)
    metrics.init_app(app)
    app.register_blueprint(ops.bp)
    if settings.dev_mode:
        log_line(
            logging.getLogger("billhook.web"),
            "DEVELOPMENT MODE (BILLHOOK_DEV_MODE=1): PayPal deliveries signed with billhook's development"
            " certificate are trusted where the provider's verification is 'development'; never run so in production",
            level=logging.WARNING,
        )
    return app


def _celery_publisher(settings: Settings):
    """Publishes ids from a thread of its own, so no request waits on the broker (see
    worker/publisher.py); the Celery app is built there, in the serving process."""
    return Publisher(lambda: publishing_celery(settings))
