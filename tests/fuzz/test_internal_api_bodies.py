"""The internal API's bodies under arbitrary input, on PostgreSQL (which refuses what SQLite
keeps): never a 5xx, and what is accepted is stored as the answer says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shared.billing.accounts import ensure_account
from shared.models import EmailOutbox
from tests.conftest import Enqueued
from tests.fuzz.strategies import any_text, json_values, loose_dumps, nested, one_field_spoiled, plausible_id
from web import create_app

SERVICE = {"Authorization": "Bearer test-service-token", "Content-Type": "application/json"}

email_bodies = st.fixed_dictionaries(
    {
        "template": st.one_of(st.sampled_from(["welcome", "password_reset", "email_verification"]), any_text),
        "idempotency_key": st.one_of(st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True), any_text, json_values),
    },
    optional={
        "to": st.one_of(st.emails(), plausible_id.map(lambda s: s + "@example.com"), any_text, json_values),
        "account_id": st.one_of(st.just("acct_known"), plausible_id, json_values),
        "context": st.one_of(
            st.fixed_dictionaries({"reset_url": st.one_of(any_text, st.just("https://app.example/r"))}),
            st.dictionaries(st.one_of(any_text, plausible_id), json_values, max_size=4),
            json_values,
        ),
    },
)
email_bodies = st.one_of(
    email_bodies,
    one_field_spoiled({"template": "welcome", "to": "ada@example.com", "idempotency_key": "k-1", "context": {}}),
    one_field_spoiled({"template": "welcome", "account_id": "acct_known", "idempotency_key": "k-2"}),
    one_field_spoiled(
        {"template": "password_reset", "to": "ada@example.com", "idempotency_key": "k-3", "context": {"reset_url": "u"}}
    ),
)
debit_bodies = st.fixed_dictionaries(
    {
        "account_id": st.one_of(st.just("acct_known"), plausible_id, json_values),
        "amount": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_values),
        "idempotency_key": st.one_of(st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True), any_text),
    },
    optional={"description": st.one_of(any_text, json_values)},
)


@pytest.fixture
def pg_api(settings, pg_database):
    from shared.db import make_sessionmaker
    from tests.web.webhooks.test_stripe import postgresql_store

    pg_settings, engine = postgresql_store(settings, pg_database)
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        ensure_account(session, "acct_known", email="known@example.com", name="Known")
    app = create_app(pg_settings, enqueue=Enqueued(), enqueue_email=Enqueued())
    yield app.test_client(), factory
    app.extensions["billhook"].dispose()
    engine.dispose()


pytestmark = pytest.mark.postgres


@given(body=email_bodies, raw=st.one_of(st.none(), st.binary(max_size=100), nested(b"{}")))
@settings(max_examples=150)
def test_an_email_request_is_never_a_5xx_and_what_is_accepted_is_queued(pg_api, body, raw):
    client, session_factory = pg_api

    response = client.post("/api/v1/internal/emails", data=loose_dumps(body) if raw is None else raw, headers=SERVICE)

    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.is_json
    if response.status_code in (200, 202):
        with session_factory() as session:
            assert session.scalars(select(EmailOutbox).filter_by(id=response.json["id"])).one()


debit_bodies = st.one_of(
    debit_bodies,
    one_field_spoiled({"account_id": "acct_known", "amount": 1, "idempotency_key": "d-1", "description": "Usage"}),
)


@given(body=debit_bodies)
@settings(max_examples=100)
def test_a_debit_is_never_a_5xx(pg_api, body):
    client, _ = pg_api

    response = client.post("/api/v1/internal/credits/debit", data=loose_dumps(body), headers=SERVICE)

    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.is_json
