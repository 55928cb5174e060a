"""How a failed run is recorded, on the real broker and PostgreSQL with a real worker:

- a run whose failure cannot be recorded (the store is down) still schedules its retry, with its
  backoff countdown, instead of leaving the event `received` with nothing queued until the
  sweeper's next pass;
- a failing INSERT fails the event at once (a NOT NULL violation is no race), and neither the
  worker's logs nor the event's `last_error` carry the personal data the statement held."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from celery.exceptions import Retry

from shared.config import Settings
from tests.factories import stripe_events as se
from tests.factories.inbox import store_event
from tests.integration import support
from tests.integration.worker_app import FAILING_INSERT
from worker.celery_app import make_celery
from worker.messages import PROCESS_EVENT
from worker.tasks import events as _events  # noqa: F401 - registers the task on every app

pytestmark = [pytest.mark.redis]


@pytest.fixture
def store_down_app(redis_url, tmp_path):
    """The worker's app on a real broker and a store that refuses connections (nothing listens on
    port 1)."""
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/billhook",
        redis_url=redis_url,
        var_dir=tmp_path,
        queue_name=f"billhook_it_{uuid.uuid4().hex[:12]}",
        task_max_retries=3,
    )
    app = make_celery(settings)
    yield app
    redis.Redis.from_url(redis_url).delete(settings.queue_name)
    app.close()


def test_a_run_that_cannot_record_its_failure_still_schedules_its_retry(store_down_app, redis_url):
    task = store_down_app.tasks[PROCESS_EVENT]
    task.push_request(
        id=str(uuid.uuid4()), retries=0, args=[1], kwargs={}, delivery_info={}, is_eager=False, called_directly=False
    )
    try:
        with pytest.raises(Retry) as raised:
            task.run(1)
    finally:
        task.pop_request()

    assert raised.value.when >= 1  # the backoff's countdown, not an immediate loop
    assert "127.0.0.1" not in str(raised.value)  # Celery logs it: the error's class, not its text
    [message] = redis.Redis.from_url(redis_url).lrange(store_down_app.conf.task_default_queue, 0, -1)
    headers = json.loads(message)["headers"]
    assert (headers["task"], headers["retries"], headers["eta"] is not None) == (PROCESS_EVENT, 1, True)


EMAIL = "ada.lovelace@example.com"


@pytest.mark.postgres
def test_a_failing_insert_fails_at_once_leaving_no_personal_data_in_logs_or_on_the_event(
    pg_settings, pg_session_factory, worker_factory, publisher
):
    worker = worker_factory(pg_settings, concurrency=1)
    evt = se.event(FAILING_INSERT, {**se.fixture("customer"), "email": EMAIL})
    publisher(store_event(pg_session_factory, evt))

    support.wait_for(lambda: support.event_status(pg_session_factory, evt["id"]) == "failed")
    row = support.event_row(pg_session_factory, evt["id"])
    assert row.attempts == 1
    assert row.last_error == "IntegrityError: NotNullViolation, sqlstate 23502"
    assert "ada.lovelace" not in worker.log_tail(chars=10**7)
