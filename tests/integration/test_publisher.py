"""worker/publisher.py: ids are published off the request path, to a real Redis; a dead or hung
broker costs a request nothing, and what could not be published is left to the sweeper."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from shared import processing
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from worker.config import new_celery
from worker.messages import (
    MAX_IDS_PER_MESSAGE,
    PROCESS_EVENT,
    PROCESS_EVENTS,
    SEND_EMAIL,
    RedisMessageEncoder,
    publish,
)
from worker.publisher import Publisher, publishing_celery

# Before the publisher, one webhook waited ~2 s on a dead broker; this bound is far above what a
# request costs without waiting (milliseconds) and far below that wait times the requests sent.
REQUESTS = 10
BOUND_SECONDS = 1.0


@pytest.fixture
def hung_broker():
    """A port that accepts connections (the kernel's backlog) and never answers a command."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def _queued(client: redis.Redis, queue: str) -> list[tuple[str, int]]:
    """(task name, id) of each message waiting in a Celery queue on Redis."""
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args[0]))
    return out


def _ids(arg: int | list[int]) -> list[int]:
    return [arg] if isinstance(arg, int) else arg


def test_published_ids_arrive_in_the_real_redis_queue_in_batches(settings, redis_url):
    queue = f"test_publisher_{uuid.uuid4().hex[:8]}"
    publisher = Publisher(lambda: publishing_celery(settings.with_overrides(redis_url=redis_url, queue_name=queue)))
    client = redis.Redis.from_url(redis_url)
    try:
        for pk in range(1, 301):
            publisher.publish_event(pk)
        publisher.publish_email(7)

        assert publisher.flush(20)
        queued = _queued(client, queue)
        # What gathered goes in batch messages of a few ids, each id in exactly one message.
        events = [pk for task, arg in queued if task in (PROCESS_EVENT, PROCESS_EVENTS) for pk in _ids(arg)]
        assert sorted(events) == list(range(1, 301))
        assert any(task == PROCESS_EVENTS for task, _ in queued)
        assert all(len(_ids(arg)) <= MAX_IDS_PER_MESSAGE for _, arg in queued)
        assert [pk for task, pk in queued if task == SEND_EMAIL] == [7]
        assert (publisher.published, publisher.dropped) == (301, 0)
    finally:
        client.delete(queue)
        client.close()


@pytest.mark.redis
def test_what_the_publisher_sends_a_real_worker_runs(store_settings, store_session_factory, worker_factory):
    """The publisher builds Celery's message itself (no send_task): a worker takes it as a task."""
    from shared.billing import ledger
    from tests.integration import support

    purchases = [
        se.event(
            "checkout.session.completed",
            se.checkout_session(account_id=f"acct_pub_{n}", mode="payment", package_id="starter", amount_total=999),
        )
        for n in range(3)
    ]
    pks = [store_event(store_session_factory, evt) for evt in purchases]
    worker_factory(store_settings, concurrency=1)
    publisher = Publisher(lambda: publishing_celery(store_settings))
    for pk in pks:
        publisher.publish_event(pk)

    assert publisher.flush(20) and publisher.published == len(pks)
    support.wait_for(
        lambda: support.all_succeeded(store_session_factory, [evt["id"] for evt in purchases]),
        30,
        message="the published events succeeded",
    )
    with store_session_factory() as session:
        assert [ledger.balance(session, f"acct_pub_{n}") for n in range(3)] == [500, 500, 500]


def test_a_hung_broker_never_holds_a_caller_and_the_failure_drops_ids_for_a_while(settings, hung_broker):
    publisher = Publisher(lambda: publishing_celery(settings.with_overrides(redis_url=hung_broker)), pause_seconds=60)

    started = time.monotonic()
    for pk in range(1, 1001):
        publisher.publish_event(pk)
    assert time.monotonic() - started < BOUND_SECONDS

    # The thread gives up on the broker (socket timeout), drops what was pending and pauses.
    assert publisher.flush(30)
    assert publisher.paused
    assert (publisher.published, publisher.dropped) == (0, 1000)
    publisher.publish_event(1001)  # while paused: dropped at once, no broker round trip tried
    assert publisher.dropped == 1001


def test_with_the_broker_hung_webhooks_are_answered_at_once_and_the_sweeper_queues_them(settings, seeded, hung_broker):
    from web import create_app

    client = create_app(settings.with_overrides(redis_url=hung_broker)).test_client()
    timings = []
    for _ in range(REQUESTS):
        body, headers = se.signed(
            se.event(
                "checkout.session.completed",
                se.checkout_session(account_id="acct_web", mode="subscription", plan_id="growth"),
            ),
            TEST_WEBHOOK_SECRET,
        )
        started = time.monotonic()
        assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
        timings.append(time.monotonic() - started)

    assert max(timings) < BOUND_SECONDS, timings
    # Nothing reached the broker, and nothing is lost: the rows are committed `received`, and the
    # sweeper queues every one of them once the grace has passed.
    after_grace = datetime.now(UTC) + timedelta(seconds=61)
    swept: list[int] = []
    assert len(processing.sweep(seeded, swept.append, now=after_grace, grace_seconds=60)) == REQUESTS
    assert len(set(swept)) == REQUESTS


def test_the_publishers_encoded_message_is_the_one_celerys_producer_sends(settings, redis_url):
    """The publisher pushes messages it encodes from a template (RedisMessageEncoder): what a
    worker reads must be exactly what `publish` (Celery's producer path) puts there, ids aside."""
    app = new_celery(settings.with_overrides(redis_url=redis_url, queue_name=f"billhook-enc-{id(settings)}"))
    client = redis.Redis.from_url(redis_url)
    queue = app.conf.task_default_queue
    try:
        publish(app, PROCESS_EVENT, 41)
        [sent] = client.lrange(queue, 0, -1)
    finally:
        client.delete(queue)
        app.close()
    encoded = RedisMessageEncoder(app).encode(PROCESS_EVENT, 41)

    def without_ids(raw) -> dict:
        message = json.loads(raw)
        task_id, tag = message["headers"]["id"], message["properties"]["delivery_tag"]
        return json.loads(json.dumps(message).replace(task_id, "ID").replace(tag, "TAG"))

    assert without_ids(encoded) == without_ids(sent)
    assert json.loads(encoded)["headers"]["id"] != json.loads(encoded)["properties"]["delivery_tag"]
