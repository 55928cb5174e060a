"""The bench's reference intakes (bench/lean_app.py under gunicorn, bench/async_app.py under
uvicorn) do the durable work they are compared for: a signed delivery is committed before its
2xx and its id reaches the broker, a redelivery is found, a forged one is refused. A reference
that answered fast without storing would make `make bench`'s comparison a lie."""

from __future__ import annotations

import time

import pytest
import redis
import requests
from sqlalchemy import create_engine, select

from bench import services
from shared.models import WebhookEvent
from tests.factories.stripe_events import event, signed

PATH = "/webhooks/stripe"


def _start(kind: str, env: dict[str, str], tmp_path) -> services.Proc:
    if kind == "lean":
        return services.start_gunicorn("lean", "bench.lean_app:app", env, tmp_path)
    return services.start_uvicorn("async", "bench.async_app:app", env, tmp_path, workers=1)


@pytest.mark.parametrize("kind", ["lean", "async"])
def test_a_reference_intake_stores_publishes_and_refuses_as_billhook_does(kind, pg_settings, tmp_path):
    queue = f"test_reference_{kind}_{time.time_ns()}"
    env = services.service_env(pg_settings.database_url, pg_settings.redis_url, queue, tmp_path)
    env["HARNESS_WEBHOOK_SECRET"] = services.WEBHOOK_SECRET
    proc = _start(kind, env, tmp_path)
    broker = redis.Redis.from_url(pg_settings.redis_url)
    engine = create_engine(pg_settings.database_url)
    try:
        evt = event("invoice.paid", {"id": "in_reference", "object": "invoice"})
        body, headers = signed(evt, services.WEBHOOK_SECRET)
        url = f"http://127.0.0.1:{proc.port}{PATH}"

        first = requests.post(url, data=body, headers=headers, timeout=10)
        again = requests.post(url, data=body, headers=headers, timeout=10)
        forged_body, forged_headers = signed(event("invoice.paid", {"id": "in_forged"}), "whsec_not_the_secret")
        forged = requests.post(url, data=forged_body, headers=forged_headers, timeout=10)

        assert (first.status_code, first.json()["duplicate"]) == (200, False)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        assert forged.status_code == 400
        with engine.connect() as conn:
            rows = conn.execute(select(WebhookEvent.id, WebhookEvent.event_id, WebhookEvent.payload)).all()
        assert [(r.event_id, r.payload) for r in rows] == [(evt["id"], evt)]  # stored once
        deadline = time.monotonic() + 10
        while broker.llen(queue) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [int(x) for x in broker.lrange(queue, 0, -1)] == [rows[0].id]  # published once
    finally:
        proc.stop()
        broker.delete(queue)
        broker.close()
        engine.dispose()
