"""The Celery application, configured in one place from the same Settings as web."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from celery import Celery, uuid
from kombu import Producer
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db import make_engine, make_sessionmaker
from worker import redis_transport
from worker.interrupted_runs import StartCounter

if TYPE_CHECKING:
    from worker.publisher import Publisher

PROCESS_EVENT = "billhook.process_event"
SWEEP_INBOX = "billhook.sweep_inbox"
RECONCILE_STRIPE = "billhook.reconcile_stripe"
SEND_EMAIL = "billhook.send_email"
SWEEP_OUTBOX = "billhook.sweep_outbox"
PAYPAL_CAPTURE_ORDER = "billhook.paypal_capture_order"
SWEEP_PAYPAL_CAPTURES = "billhook.sweep_paypal_captures"


class Runtime:
    """What tasks need, built lazily in each worker process (after the prefork fork)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pid: int | None = None
        self._session_factory: sessionmaker[Session] | None = None
        self.publisher: Publisher | None = None  # set by make_celery: after-commit publishing in tasks
        self.starts = StartCounter(settings.redis_url)  # the bound on poison messages

    @property
    def session_factory(self) -> sessionmaker[Session]:
        if self._session_factory is None or self._pid != os.getpid():
            # No pre-ping: it costs a round trip on each of a task's two transactions. A connection
            # that died meanwhile fails the task with an invalidated-connection error, which is
            # transient (retried with backoff), and SQLAlchemy then recycles the whole pool.
            self._session_factory = make_sessionmaker(make_engine(self.settings, pool_pre_ping=False))
            self._pid = os.getpid()
        return self._session_factory

    @staticmethod
    def clock() -> datetime:
        return datetime.now(UTC)


def make_celery(settings: Settings) -> Celery:
    redis_transport.install()  # a Redis restart is a reconnect, not a worker exit
    app = Celery(
        "billhook", broker=settings.redis_url, include=["worker.tasks", "worker.email_tasks", "worker.paypal_tasks"]
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue_name,
        task_routes={"billhook.*": {"queue": settings.queue_name}},
        # A retry's countdown is capped well below this, or Redis would redeliver it in a loop.
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        # On a lost broker connection, let running tasks finish (Celery 6 will cancel them by
        # default): their effects commit, and the ack the dead connection refuses only means a
        # redelivery that finds the work done. Cancelling would roll the work back to be swept.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_timeout=2,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            SWEEP_INBOX: {"task": SWEEP_INBOX, "schedule": settings.sweep_interval_seconds},
            RECONCILE_STRIPE: {"task": RECONCILE_STRIPE, "schedule": settings.reconcile_interval_seconds},
            SWEEP_OUTBOX: {"task": SWEEP_OUTBOX, "schedule": settings.sweep_interval_seconds},
            SWEEP_PAYPAL_CAPTURES: {"task": SWEEP_PAYPAL_CAPTURES, "schedule": settings.sweep_interval_seconds},
        },
    )
    if settings.retry_backoff_max_seconds >= settings.broker_visibility_timeout_seconds:
        raise ValueError("retry backoff cap must stay below the broker visibility timeout")
    app.billhook = Runtime(settings)
    from worker.publisher import Publisher  # it imports the task names above

    app.billhook.publisher = Publisher(app)
    return app


def runtime(app: Celery) -> Runtime:
    return app.billhook


def publish_task(app: Celery, producer: Producer, task: str, pk: int) -> None:
    """Publish `task(pk)` to billhook's queue on `producer`, failing fast (no retry loop): the
    message `send_task` would send (Celery builds it, as `as_task_v2`), put straight on the queue by
    the broker's default exchange. What `send_task` adds around it (routing, publish signals, an
    AsyncResult, a repr of the arguments) was half of the publishing CPU a webhook, and none of it
    applies here: one queue, no results, no signal receivers."""
    message = app.amqp.as_task_v2(
        uuid(), task, args=[pk], argsrepr=f"[{pk}]", kwargsrepr="{}", ignore_result=False, reply_to=""
    )
    producer.publish(
        message.body,
        exchange="",
        routing_key=runtime(app).settings.queue_name,
        headers=message.headers,
        serializer=app.conf.task_serializer,
        retry=False,
        **message.properties,
    )


def publish(app: Celery, task: str, pk: int) -> None:
    """`publish_task` on a producer of the app's pool."""
    with app.producer_or_acquire() as producer:
        publish_task(app, producer, task, pk)


def enqueue_event(app: Celery, event_pk: int) -> None:
    """Publish one event id; fails fast so a dead broker never stalls a caller: the stored event
    is picked up by the sweeper instead."""
    publish(app, PROCESS_EVENT, event_pk)


def enqueue_email(app: Celery, outbox_id: int) -> None:
    """Publish one outbox row id, after the commit that made the row; fails fast like
    enqueue_event, and the outbox sweep picks up a row whose publish failed."""
    publish(app, SEND_EMAIL, outbox_id)
