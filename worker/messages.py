"""Billhook's messages: the task names (stable across deploys: queued messages name them) and
publishing one id to billhook's queue."""

from __future__ import annotations

from celery import Celery, uuid
from kombu import Producer

PROCESS_EVENT = "billhook.process_event"
SWEEP_INBOX = "billhook.sweep_inbox"
RECONCILE_STRIPE = "billhook.reconcile_stripe"
SEND_EMAIL = "billhook.send_email"
SWEEP_OUTBOX = "billhook.sweep_outbox"
PAYPAL_CAPTURE_ORDER = "billhook.paypal_capture_order"
SWEEP_PAYPAL_CAPTURES = "billhook.sweep_paypal_captures"
# Outgoing webhooks: deliveries on a queue of their own (worker.config routes them).
DELIVER_OUTGOING = "billhook.deliver_outgoing"
SWEEP_OUTGOING = "billhook.sweep_outgoing"
LAPSE_SUBSCRIPTIONS = "billhook.lapse_subscriptions"


def queue_for(app: Celery, task: str) -> str:
    """The queue `task` is routed to (worker.config's task_routes: exact names first)."""
    route = app.conf.task_routes.get(task) if isinstance(app.conf.task_routes, dict) else None
    return route["queue"] if route else app.conf.task_default_queue


def publish_task(app: Celery, producer: Producer, task: str, pk: int) -> None:
    """Publish `task(pk)` to its queue on `producer`, failing fast (no retry loop): the
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
        routing_key=queue_for(app, task),
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


def enqueue_delivery(app: Celery, delivery_id: int) -> None:
    """Publish one outgoing delivery id (to the outgoing queue); fails fast, the sweep has the row."""
    publish(app, DELIVER_OUTGOING, delivery_id)
