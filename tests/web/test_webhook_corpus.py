"""Validly signed bodies that are not events billhook can keep, for both providers: each is a 400
JSON error and stores nothing, on SQLite and on PostgreSQL (where Python's parser had accepted
what PostgreSQL's json and text types then refused, as 500s)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shared import credentials
from shared.models import WebhookEvent
from shared.paypal.webhooks import CertificateCache
from shared.stripe.signing import stripe_signature_header
from tests.conftest import TEST_WEBHOOK_SECRET, Enqueued
from tests.factories import paypal_events as pe
from web import create_app
from web.webhooks.paypal import CERTS_EXTENSION

DEEP = 100_000


def _corpus(type_field: str, event_type: str) -> dict[str, bytes]:
    head = '{"id": "EVT-1", "%s": "%s"' % (type_field, event_type)  # noqa: UP031 - JSON braces
    return {
        "NaN": f'{head}, "a": NaN}}'.encode(),
        "Infinity": f'{head}, "a": Infinity}}'.encode(),
        "-Infinity": f'{head}, "a": -Infinity}}'.encode(),
        "a byte order mark": b"\xef\xbb\xbf" + f"{head}}}".encode(),
        "100k-deep nesting": b"[" * DEEP + b"]" * DEEP,
        "65 levels deep": f'{head}, "a": '.encode() + b"[" * 64 + b"]" * 64 + b"}",
        "100k-deep nesting inside the event": f'{head}, "a": '.encode() + b"[" * DEEP + b"]" * DEEP + b"}",
        "NUL in id": ('{"id": "EVT-\\u0000", "%s": "%s"}' % (type_field, event_type)).encode(),  # noqa: UP031
        "NUL in the type": ('{"id": "EVT-1", "%s": "A\\u0000B"}' % type_field).encode(),  # noqa: UP031
        "a raw control character in id": ('{"id": "EVT-\x01", "%s": "%s"}' % (type_field, event_type)).encode(),  # noqa: UP031
        "a lone surrogate in id": ('{"id": "EVT-\\ud800", "%s": "%s"}' % (type_field, event_type)).encode(),  # noqa: UP031
        "a lone surrogate in the body": f'{head}, "a": "x\\udfffy"}}'.encode(),
        "a reversed surrogate pair": f'{head}, "a": "\\udc00\\ud800"}}'.encode(),
        "not UTF-8": f'{head}, "a": "'.encode() + b"\xc3\x28" + b'"}',
        "a CESU-8 surrogate": f'{head}, "a": "'.encode() + b"\xed\xa0\x80" + b'"}',
        "not an object": b'["EVT-1"]',
        "an empty body": b"",
        "trailing garbage": f"{head}}} x".encode(),
    }


STRIPE = _corpus("type", "invoice.paid")
PAYPAL = _corpus("event_type", "PAYMENT.CAPTURE.COMPLETED")


@pytest.fixture
def intake(any_store):
    with any_store.session_factory.begin() as session:
        credentials.set_provider(session, "paypal", webhook_id=pe.WEBHOOK_ID, config={"verification": "offline"})
    app = create_app(any_store.settings, enqueue=Enqueued())
    app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=lambda url: pe.signing_cert().pem)
    yield app.test_client()
    app.extensions["billhook"].dispose()


def _stored(any_store) -> int:
    with any_store.session_factory() as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent))


def _assert_refused(response) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.json["error"]["code"] in ("malformed_json", "malformed_event", "malformed_body")
    assert response.json["error"]["message"]


@pytest.mark.parametrize("body", STRIPE.values(), ids=STRIPE.keys())
def test_a_signed_stripe_body_billhook_cannot_keep_is_400_and_stores_nothing(intake, any_store, body):
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(body, TEST_WEBHOOK_SECRET),
    }

    _assert_refused(intake.post("/webhooks/stripe", data=body, headers=headers))
    assert _stored(any_store) == 0


@pytest.mark.parametrize("body", PAYPAL.values(), ids=PAYPAL.keys())
def test_a_signed_paypal_body_billhook_cannot_keep_is_400_and_stores_nothing(intake, any_store, body):
    body, headers = pe.signed(body)

    _assert_refused(intake.post("/webhooks/paypal", data=body, headers=headers))
    assert _stored(any_store) == 0


KEPT = {
    "NUL inside the payload": b', "data": {"note": "a\\u0000b"}}',
    "a valid surrogate pair": b', "data": {"note": "\\ud83d\\ude00"}}',
    "64 levels deep": b', "data": ' + b"[" * 63 + b"]" * 63 + b"}",
}


@pytest.mark.parametrize("tail", KEPT.values(), ids=KEPT.keys())
def test_odd_but_standard_json_is_stored_as_signed(intake, any_store, tail):
    body = b'{"id": "evt_kept", "type": "invoice.paid"' + tail
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(body, TEST_WEBHOOK_SECRET),
    }

    response = intake.post("/webhooks/stripe", data=body, headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert _stored(any_store) == 1


@pytest.mark.parametrize(
    "create_time", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-13-01T00:00:00Z", "\x00"]
)
def test_a_paypal_create_time_out_of_the_calendar_is_left_to_receipt_time(intake, any_store, create_time):
    body, headers = pe.signed(
        pe.event("CUSTOMER.DISPUTE.CREATED", {"dispute_id": "PP-D-1"}) | {"create_time": create_time}
    )

    response = intake.post("/webhooks/paypal", data=body, headers=headers)

    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    with any_store.session_factory() as session:
        assert session.scalars(select(WebhookEvent.event_created_at)).one() is None
