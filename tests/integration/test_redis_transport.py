"""billhook's Celery app talks to Redis through the repaired transport (worker/redis_transport.py;
the restart it survives is in test_recovery.py), and its broker URL still reads redis:// where ops
see it: in the logs and in Flower, whose queue view picks its Redis client by the URL's scheme."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from flower.utils.broker import Broker

from worker import redis_transport
from worker.celery_app import make_celery
from worker.messages import enqueue_event

pytestmark = pytest.mark.redis


def test_the_app_uses_the_repaired_transport_and_flower_still_counts_its_queue(settings, redis_url):
    queue = f"billhook-test-{uuid.uuid4().hex[:8]}"
    app = make_celery(settings.with_overrides(redis_url=redis_url, queue_name=queue))
    try:
        with app.connection_for_write() as connection:
            assert isinstance(connection.transport, redis_transport.Transport)
            uri = connection.as_uri(include_password=True)
        assert uri.startswith("redis://")
        for event_pk in (1, 2, 3):
            enqueue_event(app, event_pk)
        assert asyncio.run(Broker(uri).queues([queue])) == [{"name": queue, "messages": 3}]
    finally:
        app.close()
        with redis.Redis.from_url(redis_url) as client:
            client.delete(queue)
