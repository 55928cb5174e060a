"""The one event parser (web/webhooks/events.py over web/json.py loads_strict) under arbitrary
bodies: it raises a 400 or returns an event whose every part the store keeps as received, and
on PostgreSQL a signed delivery of any such body is never a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from sqlalchemy import select

from shared.models import WebhookEvent
from shared.stripe.signing import stripe_signature_header
from tests.conftest import TEST_WEBHOOK_SECRET, Enqueued
from tests.fuzz.strategies import hostile_bodies
from web import create_app
from web.errors import ApiError
from web.json import MAX_DEPTH
from web.webhooks.events import MAX_ID_LENGTH, MAX_TYPE_LENGTH, parse_event


def _refuse(name: str):
    raise AssertionError(f"{name} passed the parser")


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def assert_storable_as_received(raw: bytes, event: dict, type_field: str) -> None:
    text = raw.decode("utf-8")  # strict: no invalid UTF-8, no encoded surrogates
    assert not text.startswith("\ufeff")
    value = json.loads(text, parse_constant=_refuse)  # no NaN or Infinity
    assert value == event
    assert _depth(value) <= MAX_DEPTH
    json.dumps(value).encode("utf-8")  # every string is whole Unicode (no lone surrogate)
    for key, limit in (("id", MAX_ID_LENGTH), (type_field, MAX_TYPE_LENGTH)):
        assert isinstance(event[key], str) and 0 < len(event[key]) <= limit and event[key].isprintable()


@pytest.mark.parametrize("type_field", ["type", "event_type"])
@given(data=hostile_bodies("type"))
@settings(max_examples=150)
def test_the_parser_refuses_with_400_or_returns_what_the_store_keeps(type_field, data):
    raw = data.replace(b'"type"', f'"{type_field}"'.encode())
    try:
        event = parse_event(raw, type_field=type_field)
    except ApiError as exc:
        assert exc.status == 400 and exc.code in ("malformed_json", "malformed_event")
        return
    assert_storable_as_received(raw, event, type_field)


@pytest.mark.postgres
@given(raw=hostile_bodies("type"))
@settings(max_examples=60)
def test_a_signed_delivery_of_any_body_is_never_a_5xx_on_postgresql(pg_intake, raw):
    client, session_factory = pg_intake
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(raw, TEST_WEBHOOK_SECRET),
    }

    response = client.post("/webhooks/stripe", data=raw, headers=headers)

    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.is_json
    if response.status_code == 200:
        event_id = json.loads(raw)["id"]
        with session_factory() as session:
            assert session.scalars(select(WebhookEvent.event_id).filter_by(event_id=event_id)).one() == event_id


@pytest.fixture
def pg_intake(settings, pg_database):
    from shared.db import make_sessionmaker
    from tests.web.webhooks.test_stripe import postgresql_store

    pg_settings, engine = postgresql_store(settings, pg_database)
    app = create_app(pg_settings, enqueue=Enqueued())
    yield app.test_client(), make_sessionmaker(engine)
    app.extensions["billhook"].dispose()
    engine.dispose()
