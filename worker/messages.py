"""Billhook's messages: the task names (stable across deploys: queued messages name them) and
publishing ids to billhook's queue: one id a message, or a batch of event or email ids in one
message (`PROCESS_EVENTS`, `SEND_EMAILS`: what the publisher sends when ids gather under load)."""

from __future__ import annotations

import base64

from celery import Celery, uuid
from kombu import Producer, serialization
from kombu.utils import json as kombu_json

PROCESS_EVENT = "billhook.process_event"
# Several events (or emails) in one message, each still in a transaction of its own: a message's
# fixed cost (broker round trips, the prefork pool's hand-off, the ack) is shared by the batch.
PROCESS_EVENTS = "billhook.process_events"
SWEEP_INBOX = "billhook.sweep_inbox"
RECONCILE_STRIPE = "billhook.reconcile_stripe"
SEND_EMAIL = "billhook.send_email"
SEND_EMAILS = "billhook.send_emails"
# The batch task for a single-id task, and how many ids one of its messages carries at most: few
# enough that a batch never holds one pool process long while another idles.
BATCHED = {PROCESS_EVENT: PROCESS_EVENTS, SEND_EMAIL: SEND_EMAILS}
MAX_IDS_PER_MESSAGE = 8
SWEEP_OUTBOX = "billhook.sweep_outbox"
PAYPAL_CAPTURE_ORDER = "billhook.paypal_capture_order"
SWEEP_PAYPAL_CAPTURES = "billhook.sweep_paypal_captures"
LAPSE_MANUAL_SUBSCRIPTIONS = "billhook.lapse_manual_subscriptions"
RECONCILE_PAYPAL = "billhook.reconcile_paypal"
# Outgoing webhooks: deliveries on a queue of their own (worker.config routes them).
DELIVER_OUTGOING = "billhook.deliver_outgoing"
SWEEP_OUTGOING = "billhook.sweep_outgoing"
LAPSE_SUBSCRIPTIONS = "billhook.lapse_subscriptions"


def queue_for(app: Celery, task: str) -> str:
    """The queue `task` is routed to (worker.config's task_routes: exact names first)."""
    route = app.conf.task_routes.get(task) if isinstance(app.conf.task_routes, dict) else None
    return route["queue"] if route else app.conf.task_default_queue


def batches(task: str, pks: list[int]) -> list[tuple[str, int | list[int]]]:
    """(task, argument) messages for `pks` of `task`: a batch task's messages of up to
    MAX_IDS_PER_MESSAGE ids where the task has one, the single-id task for a lone id."""
    batch_task = BATCHED.get(task)
    if batch_task is None:
        return [(task, pk) for pk in pks]
    out: list[tuple[str, int | list[int]]] = []
    for start in range(0, len(pks), MAX_IDS_PER_MESSAGE):
        chunk = pks[start : start + MAX_IDS_PER_MESSAGE]
        out.append((task, chunk[0]) if len(chunk) == 1 else (batch_task, chunk))
    return out


def publish_task(app: Celery, producer: Producer, task: str, pk: int | list[int]) -> None:
    """Publish `task(pk)` to its queue on `producer`, failing fast (no retry loop): the
    message `send_task` would send (Celery builds it, as `as_task_v2`), put straight on the queue by
    the broker's default exchange. `send_task` adds routing, publish signals, an AsyncResult and a
    repr of the arguments around it, none of which billhook uses (one queue, no results, no signal
    receivers), at a cost paid on every webhook."""
    message = app.amqp.as_task_v2(
        uuid(), task, args=[pk], argsrepr=f"[{_text(pk)}]", kwargsrepr="{}", ignore_result=False, reply_to=""
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


def _text(arg: int | list[int]) -> str:
    """The argument as it stands in the message's JSON body and in its argsrepr."""
    return str(arg) if isinstance(arg, int) else "[" + ", ".join(str(int(pk)) for pk in arg) + "]"


def publish(app: Celery, task: str, pk: int | list[int]) -> None:
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


class RedisMessageEncoder:
    """The bytes kombu's Redis transport pushes onto billhook's queue for `task(pk)`, made from a
    template per task instead of kombu's producer path: the publisher thread encodes every
    webhook's message in the serving process, and the template costs a string format where the
    producer path builds and serialises the whole message each time. The message is the one
    `publish_task` sends (tests/worker/test_messages.py compares the two), with fresh ids, for the
    queue the task is routed to (`queue_of`)."""

    _ID = "00000000-0000-4000-8000-00000000b111"
    _TAG = "00000000-0000-4000-8000-00000000b222"
    _PK = 918273645546372819

    def __init__(self, app: Celery):
        self._app = app
        self.queue: str = app.conf.task_default_queue
        self._templates: dict[str, tuple[str, bytes, bytes, str]] = {}

    def queue_of(self, task: str) -> str:
        return (self._templates.get(task) or self._template(task))[3]

    def encode(self, task: str, pk: int | list[int]) -> str:
        """The message for `task(pk)`; `pk` a list of ids for a batch task."""
        template, body_head, body_tail, _queue = self._templates.get(task) or self._template(task)
        text = _text(pk)
        body = base64.b64encode(body_head + text.encode() + body_tail).decode()
        return template.format(id=uuid(), tag=uuid(), pk=text, body=body)

    def _template(self, task: str) -> tuple[str, bytes, bytes, str]:
        app = self._app
        queue = queue_for(app, task)
        message = app.amqp.as_task_v2(
            self._ID, task, args=[self._PK], argsrepr=f"[{self._PK}]", kwargsrepr="{}", ignore_result=False, reply_to=""
        )
        _content_type, encoding, body = serialization.dumps(message.body, serializer=app.conf.task_serializer)
        body = body.encode(encoding) if isinstance(body, str) else body
        head, _, tail = body.partition(str(self._PK).encode())
        properties = {
            **message.properties,
            "delivery_mode": 2,  # persistent, as kombu's producer sets it
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": self._TAG,
        }
        document = {
            "body": "BODY",
            "content-encoding": encoding,
            "content-type": _content_type,
            "headers": message.headers,
            "properties": properties,
        }
        template = (
            kombu_json.dumps(document)
            .replace("{", "{{")
            .replace("}", "}}")
            .replace(self._ID, "{id}")
            .replace(self._TAG, "{tag}")
            .replace(str(self._PK), "{pk}")
            .replace('"BODY"', '"{body}"')
        )
        self._templates[task] = (template, head, tail, queue)
        return self._templates[task]
