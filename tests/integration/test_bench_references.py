"""The bench's reference intakes (bench/lean_app.py under gunicorn, bench/async_app.py and its
group-commit twin bench/async_group_app.py under uvicorn) do the durable work they are compared
for: a signed delivery is committed before its 2xx and its id reaches the broker, a redelivery is
found, a forged one is refused. A reference that answered fast without storing would make
`make bench`'s comparison a lie."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

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
    app = "bench.async_group_app:app" if kind == "async-group" else "bench.async_app:app"
    return services.start_uvicorn(kind, app, env, tmp_path, workers=1)


def _reference_env(kind: str, pg_settings, tmp_path) -> tuple[str, dict[str, str]]:
    queue = f"test_reference_{kind}_{time.time_ns()}"
    env = services.service_env(pg_settings.database_url, pg_settings.redis_url, queue, tmp_path)
    env["HARNESS_WEBHOOK_SECRET"] = services.WEBHOOK_SECRET
    return queue, env


@pytest.mark.parametrize("kind", ["lean", "async", "async-group"])
def test_a_reference_intake_stores_publishes_and_refuses_as_billhook_does(kind, pg_settings, tmp_path):
    queue, env = _reference_env(kind, pg_settings, tmp_path)
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


def test_group_commit_stores_concurrent_deliveries_once_each_and_answers_one_of_each_pair_new(pg_settings, tmp_path):
    # One connection: the deliveries that arrive while it is busy go together in one INSERT,
    # duplicates within a batch included.
    queue, env = _reference_env("async-group", pg_settings, tmp_path)
    env["GROUP_CONNECTIONS"] = "1"
    proc = _start("async-group", env, tmp_path)
    broker = redis.Redis.from_url(pg_settings.redis_url)
    engine = create_engine(pg_settings.database_url)
    try:
        events = [event("invoice.paid", {"id": f"in_group_{i}", "object": "invoice"}) for i in range(20)]
        deliveries = [signed(evt, services.WEBHOOK_SECRET) for evt in events] * 2
        url = f"http://127.0.0.1:{proc.port}{PATH}"
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda d: requests.post(url, data=d[0], headers=d[1], timeout=10), deliveries))

        assert {a.status_code for a in answers} == {200}
        new = [d[0] for d, a in zip(deliveries, answers, strict=True) if not a.json()["duplicate"]]
        assert sorted(new) == sorted(d[0] for d in deliveries[:20])  # each event answered new once
        with engine.connect() as conn:
            rows = conn.execute(select(WebhookEvent.id, WebhookEvent.event_id)).all()
        assert sorted(r.event_id for r in rows) == sorted(evt["id"] for evt in events)
        deadline = time.monotonic() + 10
        while broker.llen(queue) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(int(x) for x in broker.lrange(queue, 0, -1)) == sorted(r.id for r in rows)
    finally:
        proc.stop()
        broker.delete(queue)
        broker.close()
        engine.dispose()
