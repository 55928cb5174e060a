"""The thin Flask app: webhook intake and the APIs the frontend calls."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from flask import Flask
from sqlalchemy import Connection

from shared.config import Settings
from shared.credentials import WebhookSecretCache
from shared.db import make_engine, make_sessionmaker
from web.json import IsoJSONProvider


class Billhook:
    """What the views need, kept on `app.extensions['billhook']`."""

    def __init__(
        self,
        settings: Settings,
        enqueue: Callable[[int], None],
        enqueue_email: Callable[[int], None],
    ):
        self.settings = settings
        self.engine = make_engine(settings)
        self.session_factory = make_sessionmaker(self.engine)
        # Intake stores an event with one atomic statement (INSERT ... ON CONFLICT DO NOTHING) on a
        # Core connection (no ORM session to set up per webhook). On PostgreSQL it runs in
        # autocommit, a transaction of its own, which saves the BEGIN and COMMIT round trips; the
        # row is still committed before the 2xx.
        self._intake_engine = (
            self.engine if settings.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.webhook_secrets = WebhookSecretCache(self.session_factory, ttl=settings.provider_cache_seconds)
        self.enqueue = enqueue
        self.enqueue_email = enqueue_email

    def intake_transaction(self) -> AbstractContextManager[Connection]:
        return self._intake_engine.begin()


def create_app(
    settings: Settings | None = None,
    *,
    enqueue: Callable[[int], None] | None = None,
    enqueue_email: Callable[[int], None] | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    if enqueue is None or enqueue_email is None:
        publisher = _celery_publisher(settings)
        enqueue = publisher.event if enqueue is None else enqueue
        enqueue_email = publisher.email if enqueue_email is None else enqueue_email
    app = Flask(__name__)
    app.json = IsoJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    app.extensions["billhook"] = Billhook(settings, enqueue, enqueue_email)

    from web import errors, paypal_webhooks, webhooks

    errors.register(app)
    app.register_blueprint(webhooks.bp)

    from web import internal_api

    app.register_blueprint(internal_api.bp)
    app.register_blueprint(paypal_webhooks.bp)

    from web import billing_api, openapi

    app.register_blueprint(billing_api.bp)
    app.register_blueprint(openapi.bp)

    from web import health, metrics, ops

    app.register_blueprint(health.bp)
    metrics.init_app(app)
    app.register_blueprint(ops.bp)
    return app


def _celery_publisher(settings: Settings):
    """Publishes ids from a thread of its own, so no request waits on the broker (see
    worker/publisher.py); the Celery app is built there, in the serving process."""
    from worker.publisher import Publisher, publishing_celery

    return Publisher(lambda: publishing_celery(settings))
