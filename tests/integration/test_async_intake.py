"""The event-loop intake (web/webhooks/asgi.py) as the Procfile's `intake:` line runs it: a real
uvicorn process on the real store and broker, driven over HTTP. It must keep every promise the
Flask intake keeps: committed before the 2xx, enqueued once, a redelivery found, a forged or
malformed delivery refused with a JSON 4xx, the body bounded in size and in time, a dropped
connection retried, a store that is down a 503, and the request's log line without the payload."""

from __future__ import annotations

import base64
import json
import socket
import time

import psycopg
import pytest
import redis
import requests
from sqlalchemy import create_engine, select

from bench import services
from shared import credentials
from shared.db import make_engine, make_sessionmaker
from shared.models import WebhookEvent
from shared.paypal import development
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import paypal_events as pe
from tests.factories import stripe_events as se
from tests.integration.conftest import worker_env
from web.webhooks.async_store import APPLICATION_NAME

pytestmark = [pytest.mark.postgres]

BODY_READ_SECONDS = 1
SLACK_SECONDS = 3.0


def _start(settings, tmp_path, **extra: str) -> tuple[services.Proc, str]:
    env = worker_env(settings, tmp_path / "unused.ready", {"BILLHOOK_BODY_READ_SECONDS": str(BODY_READ_SECONDS)})
    env.update(extra)
    proc = services.start_intake("intake", env, tmp_path)
    return proc, f"http://127.0.0.1:{proc.port}"


@pytest.fixture
def intake(pg_settings, tmp_path):
    proc, url = _start(pg_settings, tmp_path)
    yield url, proc
    proc.stop()


@pytest.fixture
def broker(pg_settings):
    client = redis.Redis.from_url(pg_settings.redis_url)
    yield client
    client.delete(pg_settings.queue_name)
    client.close()


@pytest.fixture
def rows(pg_settings):
    engine = create_engine(pg_settings.database_url)

    def read():
        with engine.connect() as conn:
            return conn.execute(
                select(WebhookEvent.id, WebhookEvent.event_id, WebhookEvent.status, WebhookEvent.payload).order_by(
                    WebhookEvent.id
                )
            ).all()

    yield read
    engine.dispose()


def _published(broker, queue: str, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while broker.llen(queue) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(_task_ids(broker.lrange(queue, 0, -1)))


def _task_ids(messages: list[bytes]) -> list[int]:
    """The event ids in the Celery messages the publisher pushed (one id or a batch a message)."""
    ids = []
    for raw in messages:
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        ids.extend([args[0]] if isinstance(args[0], int) else args[0])
    return ids


def _signed_raw(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {"Stripe-Signature": se.stripe_signature_header(body, TEST_WEBHOOK_SECRET, None)}


def _post(url: str, evt, secret: str = TEST_WEBHOOK_SECRET, **kwargs) -> requests.Response:
    body, headers = se.signed(evt, secret) if not isinstance(evt, tuple) else evt
    return requests.post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=10, **kwargs)


def test_a_delivery_is_committed_before_its_2xx_and_enqueued_once(intake, rows, broker, pg_settings):
    url, _proc = intake
    evt = se.event("invoice.paid", {"id": "in_async", "object": "invoice"})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)

    first = requests.post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=10)
    stored = rows()  # read at once: the 2xx came after the commit
    again = requests.post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=10)

    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False, "status": "received"}
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert [(r.event_id, r.status, r.payload) for r in stored] == [(evt["id"], "received", evt)]
    assert rows() == stored  # the redelivery stored nothing more
    assert _published(broker, pg_settings.queue_name, 1) == [stored[0].id]


def test_an_unhandled_type_is_kept_as_ignored_and_never_queued(intake, rows, broker, pg_settings):
    url, _proc = intake
    evt = se.event("issuing_card.created", {"id": "ic_1", "object": "issuing_card"})
    answer = _post(url, evt)
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    assert [(r.event_id, r.status) for r in rows()] == [(evt["id"], "ignored")]
    time.sleep(0.3)  # the publisher's linger: an id would have been pushed by now
    assert broker.llen(pg_settings.queue_name) == 0


def test_forged_unsigned_and_malformed_deliveries_are_refused_with_json_and_store_nothing(intake, rows):
    url, _proc = intake
    evt = se.event("invoice.paid", {"id": "in_forged", "object": "invoice"})
    forged = _post(url, evt, secret="whsec_not_the_secret")
    unsigned = requests.post(f"{url}/webhooks/stripe", data=json.dumps(evt), timeout=10)
    stale = _post(url, se.signed(evt, TEST_WEBHOOK_SECRET, timestamp=int(time.time()) - 3600))
    malformed = _post(url, _signed_raw(b'{"id": "evt_x", "type": "invoice.paid",'))
    not_an_event = _post(url, _signed_raw(b'["evt_x"]'))

    codes = [(r.status_code, r.json()["error"]["code"]) for r in (forged, unsigned, stale, malformed, not_an_event)]
    assert codes == [
        (400, "invalid_signature"),
        (400, "missing_signature"),
        (400, "stale_timestamp"),
        (400, "malformed_json"),
        (400, "malformed_event"),
    ]
    assert rows() == []


def test_other_paths_and_methods_are_json_errors(intake):
    url, _proc = intake
    missing = requests.get(f"{url}/api/v1/billing/catalog", timeout=10)
    wrong_method = requests.get(f"{url}/webhooks/stripe", timeout=10)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "method_not_allowed")
    assert wrong_method.headers["Allow"] == "POST"


def test_a_body_over_the_limit_is_a_413_whether_announced_or_streamed(intake, rows, pg_settings):
    url, _proc = intake
    limit = pg_settings.max_webhook_bytes
    evt = se.event("invoice.paid", {"id": "in_big", "object": "invoice", "memo": "x" * limit})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)
    announced = requests.post(f"{url}/webhooks/stripe", data=body, headers=headers, timeout=10)
    streamed = requests.post(
        f"{url}/webhooks/stripe",
        data=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers=headers,
        timeout=10,
    )
    assert (announced.status_code, announced.json()["error"]["code"]) == (413, "payload_too_large")
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "payload_too_large")
    assert rows() == []


def test_a_trickling_client_gets_a_408_in_the_bound_and_others_are_served_meanwhile(intake, rows):
    url, _proc = intake
    host, port = url.removeprefix("http://").split(":")
    tricklers = []
    for _ in range(4):
        conn = socket.create_connection((host, int(port)))
        conn.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: billhook\r\nStripe-Signature: t=1,v1=00\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        tricklers.append(conn)
    started = time.monotonic()
    served = _post(url, se.event("invoice.paid", {"id": "in_beside", "object": "invoice"}))
    served_in = time.monotonic() - started
    answers = []
    for conn in tricklers:
        conn.settimeout(BODY_READ_SECONDS + SLACK_SECONDS)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        answers.append(data)
        conn.close()
    waited = time.monotonic() - started

    assert served.status_code == 200 and served_in < BODY_READ_SECONDS
    assert all(a.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in a for a in answers), answers
    assert waited < BODY_READ_SECONDS + SLACK_SECONDS
    assert [r.event_id for r in rows()] == [json.loads(served.request.body)["id"]]


def _intake_backends(pg_settings) -> list[int]:
    with psycopg.connect(pg_settings.database_url.replace("+psycopg", ""), autocommit=True) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
            ).fetchall()
        ]


def test_connections_the_server_dropped_are_replaced_and_the_delivery_stored(intake, rows, pg_settings):
    url, _proc = intake
    assert _post(url, se.event("invoice.paid", {"id": "in_before", "object": "invoice"})).status_code == 200
    pids = _intake_backends(pg_settings)
    assert pids, "the intake holds a connection of its own"
    with psycopg.connect(pg_settings.database_url.replace("+psycopg", ""), autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    after = _post(url, se.event("invoice.paid", {"id": "in_after", "object": "invoice"}))

    assert after.status_code == 200 and after.json()["duplicate"] is False
    assert [r.event_id for r in rows()][-1] == json.loads(after.request.body)["id"]
    assert set(_intake_backends(pg_settings)).isdisjoint(pids)


def test_a_store_that_cannot_be_reached_is_a_503_the_provider_retries(pg_settings, tmp_path):
    unreachable = pg_settings.with_overrides(database_url="postgresql+psycopg://postgres@127.0.0.1:1/test")
    proc, url = _start(unreachable, tmp_path)
    try:
        answer = _post(url, se.event("invoice.paid", {"id": "in_down", "object": "invoice"}))
    finally:
        proc.stop()
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "store_unavailable")


def test_an_events_table_gone_is_a_503_and_the_redelivery_stored_once_it_is_back(intake, rows, pg_settings):
    url, _proc = intake
    warm = se.event("invoice.paid", {"id": "in_warm", "object": "invoice"})
    assert _post(url, warm).status_code == 200  # the secrets cached, a connection open
    evt = se.event("invoice.paid", {"id": "in_restored", "object": "invoice"})
    admin = psycopg.connect(pg_settings.database_url.replace("+psycopg", ""), autocommit=True)
    try:
        admin.execute("ALTER TABLE webhook_events RENAME TO webhook_events_away")
        try:
            during = _post(url, evt)
        finally:
            admin.execute("ALTER TABLE webhook_events_away RENAME TO webhook_events")
    finally:
        admin.close()
    after = _post(url, evt)  # the provider's retry

    assert (during.status_code, during.json()["error"]["code"]) == (503, "store_unavailable")
    assert after.status_code == 200 and after.json()["duplicate"] is False
    assert [r.event_id for r in rows()] == [warm["id"], evt["id"]]


def test_the_request_line_names_the_event_and_never_the_payload(intake):
    url, proc = intake
    secret_memo = "customer-address-221B-Baker-Street"
    evt = se.event("invoice.paid", {"id": "in_logged", "object": "invoice", "memo": secret_memo})
    assert _post(url, evt).status_code == 200
    deadline = time.monotonic() + 5
    while evt["id"] not in proc.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = proc.log_path.read_text()
    line = next(json.loads(s[s.index("{") :]) for s in log.splitlines() if evt["id"] in s and '"request"' in s)
    assert {k: line[k] for k in ("path", "endpoint", "status", "provider", "type", "outcome")} == {
        "path": "/webhooks/stripe",
        "endpoint": "webhooks.stripe_webhook",
        "status": 200,
        "provider": "stripe",
        "type": "invoice.paid",
        "outcome": "accepted",
    }
    assert secret_memo not in log and TEST_WEBHOOK_SECRET not in log


def test_a_paypal_delivery_is_verified_in_a_thread_and_stored(pg_settings, rows, broker, tmp_path):
    engine = make_engine(pg_settings)
    with make_sessionmaker(engine).begin() as session:
        credentials.set_provider(session, "paypal", webhook_id=pe.WEBHOOK_ID, config={"verification": "development"})
    engine.dispose()
    proc, url = _start(pg_settings, tmp_path, BILLHOOK_DEV_MODE="1")
    try:
        evt = pe.event("PAYMENT.CAPTURE.COMPLETED", {"id": "cap_async"})
        body, headers = pe.signed(evt, cert=_development_cert(tmp_path), cert_url=development.CERT_URL)
        answer = requests.post(f"{url}/webhooks/paypal", data=body, headers=headers, timeout=10)
        forged_body, forged_headers = pe.signed(evt, cert_url=development.CERT_URL)  # another key
        forged = requests.post(f"{url}/webhooks/paypal", data=forged_body, headers=forged_headers, timeout=10)
    finally:
        proc.stop()
    assert answer.status_code == 200 and answer.json()["duplicate"] is False, answer.text
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_signature"
    assert [(r.event_id, r.payload) for r in rows()] == [(evt["id"], evt)]
    assert _published(broker, pg_settings.queue_name, 1) == [rows()[0].id]


def _development_cert(var_dir):
    class DevelopmentCert:
        def sign(self, message: bytes) -> str:
            return development.sign(var_dir, message)

    return DevelopmentCert()
