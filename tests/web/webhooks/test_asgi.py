"""The event-loop intake's app (web/webhooks/asgi.py) driven in process through ASGI on SQLite:
the paths a real server seldom shows on demand (a body cut into chunks, a client gone before its
body is in, a body that never comes, a store with no events table). The same intake on the real
server and PostgreSQL: tests/integration/test_async_intake.py."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, select, text

from bench.asgi_client import Answer, request
from shared.models import WebhookEvent
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se
from web.webhooks import asgi


def call(app, path: str, chunks: list[bytes], headers: dict[str, str], *, method="POST", then="end") -> Answer | None:
    """One request (bench/asgi_client.py says what `chunks` and `then` are)."""
    return asyncio.run(request(app, path, chunks, headers, method=method, then=then))


@pytest.fixture
def intake(settings, seeded, enqueued):
    app = asgi.create_app(settings, enqueue=enqueued)
    yield app
    asyncio.run(app.close())


def _stored(session_factory) -> list[tuple[str, str]]:
    with session_factory() as session:
        return [tuple(r) for r in session.execute(select(WebhookEvent.event_id, WebhookEvent.status))]


def test_a_delivery_is_stored_enqueued_once_and_a_redelivery_found(intake, seeded, enqueued):
    evt = se.event("invoice.paid", {"id": "in_1", "object": "invoice"})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)

    first = call(intake, "/webhooks/stripe", [body], headers)
    again = call(intake, "/webhooks/stripe", [body], headers)

    assert (first.status, first.json()) == (200, {"received": True, "duplicate": False, "status": "received"})
    assert (again.status, again.json()["duplicate"]) == (200, True)
    assert _stored(seeded) == [(evt["id"], "received")]
    assert len(enqueued) == 1


def test_a_body_in_chunks_is_read_whole_and_one_past_the_limit_is_a_413(intake, seeded, settings):
    evt = se.event("invoice.paid", {"id": "in_chunked", "object": "invoice"})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)
    chunked = call(intake, "/webhooks/stripe", [body[:10], body[10:50], body[50:]], headers)

    big, big_headers = se.signed(
        se.event("invoice.paid", {"id": "in_big", "memo": "x" * settings.max_webhook_bytes}), TEST_WEBHOOK_SECRET
    )
    streamed = call(intake, "/webhooks/stripe", [big[i : i + 65536] for i in range(0, len(big), 65536)], big_headers)
    announced = call(intake, "/webhooks/stripe", [b""], {**big_headers, "Content-Length": str(len(big))})

    assert chunked.status == 200
    for answer in (streamed, announced):
        assert (answer.status, answer.json()["error"]["code"]) == (413, "payload_too_large")
        assert answer.headers[b"connection"] == b"close"  # the rest of the body is not read
    assert _stored(seeded) == [(evt["id"], "received")]


def test_a_body_that_never_completes_is_a_408_after_the_bound(intake, seeded, monkeypatch):
    monkeypatch.setattr(asgi, "BODY_READ_SECONDS", 0.2)
    answer = call(intake, "/webhooks/stripe", [b'{"id": '], {"Stripe-Signature": "t=1,v1=00"}, then="hang")
    assert (answer.status, answer.json()["error"]["code"]) == (408, "request_timeout")
    assert answer.headers[b"connection"] == b"close"
    assert _stored(seeded) == []


def test_a_client_gone_before_its_body_is_in_gets_nothing_and_stores_nothing(intake, seeded):
    evt = se.event("invoice.paid", {"id": "in_gone", "object": "invoice"})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)
    answer = call(intake, "/webhooks/stripe", [body[:20]], headers, then="disconnect")
    assert answer is None
    assert _stored(seeded) == []


def test_no_secret_configured_is_a_503_and_a_missing_events_table_too(intake, seeded, engine):
    evt = se.event("invoice.paid", {"id": "in_down", "object": "invoice"})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE webhook_events"))
    missing_table = call(intake, "/webhooks/stripe", [body], headers)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM integration_providers"))
    not_configured = call(intake, "/webhooks/stripe", [body], headers)

    assert (missing_table.status, missing_table.json()["error"]["code"]) == (503, "store_unavailable")
    assert (not_configured.status, not_configured.json()["error"]["code"]) == (503, "not_configured")


def test_only_the_webhook_paths_are_served_and_only_by_post(intake):
    missing = call(intake, "/ops", [b""], {}, method="GET")
    wrong = call(intake, "/webhooks/paypal", [b""], {}, method="PUT")
    assert (missing.status, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status, wrong.headers[b"allow"]) == (405, b"POST")


def test_deliveries_arriving_while_the_secrets_are_read_share_one_read(intake, seeded):
    reads = []
    event.listen(
        intake.ext.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: reads.append(statement) if "integration_providers" in statement else None,
    )
    deliveries = [
        se.signed(se.event("invoice.paid", {"id": f"in_{i}", "object": "invoice"}), TEST_WEBHOOK_SECRET)
        for i in range(10)
    ]

    async def all_at_once():
        return await asyncio.gather(*(request(intake, "/webhooks/stripe", [b], h) for b, h in deliveries))

    answers = asyncio.run(all_at_once())

    assert [a.status for a in answers] == [200] * 10
    assert len(_stored(seeded)) == 10
    assert len(reads) == 1  # the cache's TTL is 0 here: without sharing, one read a delivery
