"""Celery's configuration, in one place, from the same Settings as web: the worker's app and web's
publishing-only app are both built here."""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from shared.config import Settings
from worker import redis_transport
from worker.messages import (
    DELIVER_OUTGOING,
    LAPSE_MANUAL_SUBSCRIPTIONS,
    LAPSE_SUBSCRIPTIONS,
    RECONCILE_PAYPAL,
    RECONCILE_STRIPE,
    SWEEP_INBOX,
    SWEEP_OUTBOX,
    SWEEP_OUTGOING,
    SWEEP_PAYPAL_CAPTURES,
)


def _queue(name: str) -> Queue:
    """A queue with an exchange and routing key of its own name (what Celery makes for its default
    queue): a Queue given only a name is bound to the default queue's exchange and key, and a
    retry published through Celery's router would then land on both queues."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def new_celery(settings: Settings, *, include: tuple[str, ...] = ()) -> Celery:
    """A Celery app on billhook's broker and queue, with the task modules in `include`."""
    redis_transport.install()  # a Redis restart is a reconnect, not a worker exit
    if settings.retry_backoff_max_seconds >= settings.broker_visibility_timeout_seconds:
        raise ValueError("retry backoff cap must stay below the broker visibility timeout")
    app = Celery("billhook", broker=settings.redis_url, include=list(include))
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
        # Deliveries to the main app's endpoints wait on the network: on a queue of their own, a
        # slow endpoint never holds up event processing. A worker started without -Q consumes
        # both; the Procfile gives each its own worker.
        task_queues=[_queue(settings.queue_name), _queue(settings.outgoing_queue)],
        task_routes={
            DELIVER_OUTGOING: {"queue": settings.outgoing_queue},
            "billhook.*": {"queue": settings.queue_name},
        },
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
            RECONCILE_PAYPAL: {"task": RECONCILE_PAYPAL, "schedule": settings.reconcile_interval_seconds},
            SWEEP_OUTBOX: {"task": SWEEP_OUTBOX, "schedule": settings.sweep_interval_seconds},
            SWEEP_PAYPAL_CAPTURES: {"task": SWEEP_PAYPAL_CAPTURES, "schedule": settings.sweep_interval_seconds},
            SWEEP_OUTGOING: {"task": SWEEP_OUTGOING, "schedule": settings.sweep_interval_seconds},
            LAPSE_SUBSCRIPTIONS: {"task": LAPSE_SUBSCRIPTIONS, "schedule": settings.sweep_interval_seconds},
            # A lapsed period is found within a sweep interval of its end: the query is one index probe.
            LAPSE_MANUAL_SUBSCRIPTIONS: {
                "task": LAPSE_MANUAL_SUBSCRIPTIONS,
                "schedule": settings.sweep_interval_seconds,
            },
        },
    )
    return app
