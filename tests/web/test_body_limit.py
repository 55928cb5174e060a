"""A body over MAX_CONTENT_LENGTH is 413 however it is sent. With Content-Length werkzeug refuses
it up front; sent chunked (no length) werkzeug returns it cut at the limit, which the intake
answered 400 invalid_signature. Served by a real WSGI server, as only a server de-chunks."""

from __future__ import annotations

import http.client
import json
import threading

import pytest
from werkzeug.serving import make_server

from shared.stripe.signing import stripe_signature_header
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.factories import stripe_events as se
from tests.web.webhooks.test_stripe import checkout_event, stored_events


@pytest.fixture
def server(app):
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_port
    httpd.shutdown()
    thread.join(5)


def _post_chunked(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        pieces = (body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024))
        conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        conn.close()


def _signed_of_size(size: int) -> tuple[bytes, dict[str, str]]:
    evt = checkout_event()
    evt["data"]["object"]["metadata"]["padding"] = ""
    filler = size - len(json.dumps(evt).encode())
    evt["data"]["object"]["metadata"]["padding"] = "x" * filler
    body = json.dumps(evt).encode()
    assert len(body) == size
    return body, {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(body, TEST_WEBHOOK_SECRET),
    }


def test_a_chunked_webhook_over_the_limit_is_413_json_and_stores_nothing(server, settings, seeded):
    body, headers = _signed_of_size(settings.max_webhook_bytes + 1)

    status, response_headers, answer = _post_chunked(server, "/webhooks/stripe", body, headers)

    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
    assert response_headers["Content-Type"] == "application/json"
    assert stored_events(seeded) == []


def test_a_chunked_webhook_of_exactly_the_limit_is_accepted(server, settings, seeded):
    body, headers = _signed_of_size(settings.max_webhook_bytes)

    status, _, answer = _post_chunked(server, "/webhooks/stripe", body, headers)

    assert status == 200, answer
    assert len(stored_events(seeded)) == 1


def test_a_small_chunked_webhook_is_accepted(server, seeded):
    body, headers = se.signed(checkout_event(), TEST_WEBHOOK_SECRET)

    status, _, answer = _post_chunked(server, "/webhooks/stripe", body, headers)

    assert status == 200, answer
    assert len(stored_events(seeded)) == 1


def test_a_chunked_api_body_over_the_limit_is_413(server, settings):
    body = b'{"template": "welcome", "pad": "' + b"x" * settings.max_webhook_bytes + b'"}'
    headers = {"Content-Type": "application/json", "Authorization": "Bearer test-service-token"}

    status, _, answer = _post_chunked(server, "/api/v1/internal/emails", body, headers)

    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
