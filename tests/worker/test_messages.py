"""Publishing one id: the message a worker reads is Celery's own task message, on billhook's queue."""

from __future__ import annotations

import pytest

from worker.config import new_celery
from worker.messages import PROCESS_EVENT, SEND_EMAIL, publish


@pytest.fixture
def memory_app(settings):
    app = new_celery(settings.with_overrides(redis_url="memory://", queue_name="billhook-test"))
    yield app
    app.close()


def _consume(app) -> list[tuple[str, list]]:
    got = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("billhook-test")
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            got.append((message.headers["task"], message.payload[0]))
            message.ack()
        queue.close()
    return got


def test_an_id_is_published_as_the_named_task_on_billhooks_queue(memory_app):
    publish(memory_app, PROCESS_EVENT, 41)
    publish(memory_app, SEND_EMAIL, 7)

    assert _consume(memory_app) == [(PROCESS_EVENT, [41]), (SEND_EMAIL, [7])]


def test_the_task_names_stay_as_queued_messages_know_them():
    # Messages already in Redis across a deploy name these: renaming one strands them.
    assert (PROCESS_EVENT, SEND_EMAIL) == ("billhook.process_event", "billhook.send_email")


def test_a_delivery_is_published_on_the_outgoing_queue(memory_app):
    from worker.messages import DELIVER_OUTGOING, RedisMessageEncoder

    publish(memory_app, DELIVER_OUTGOING, 5)

    assert _consume(memory_app) == []  # not on billhook's queue
    with memory_app.connection_for_read() as connection:
        queue = connection.SimpleQueue("billhook-test.outgoing")
        message = queue.get(block=False)
        assert (message.headers["task"], message.payload[0]) == (DELIVER_OUTGOING, [5])
        message.ack()
        queue.close()
    encoder = RedisMessageEncoder(memory_app)
    assert encoder.queue_of(DELIVER_OUTGOING) == "billhook-test.outgoing"
    assert encoder.queue_of("billhook.process_event") == "billhook-test"
