"""The database refusing connections: every route that needs the store answers 503 JSON (the
providers retry a 503; a 500 reads as a bug), on the real PostgreSQL, whose refusal is what the
driver reports when a database is down or being restored."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared import credentials
from shared.db import make_engine, make_sessionmaker
from shared.models import Base
from shared.paypal.webhooks import CertificateCache
from tests.conftest import TEST_WEBHOOK_SECRET, Enqueued
from tests.factories import paypal_events as pe
from tests.factories import stripe_events as se
from web.auth import issue_token
from web.webhooks.paypal import CERTS_EXTENSION

pytestmark = pytest.mark.postgres

OPS_AUTH = "ops:correct-horse"
SERVICE = {"Authorization": "Bearer test-service-token"}


def _store_refuses_connections(pg_url: str, name: str, *, refuse: bool) -> None:
    """From a connection to another database (the session's own): a database that allows no
    connection, with the ones it had ended, is what a database being restored looks like."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}'))
        if refuse:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
    admin.dispose()


@pytest.fixture
def down_app(settings, pg_url, pg_database):
    from web import create_app

    # The Stripe secret stays cached across the outage, as in production between two reads.
    pg_settings = settings.with_overrides(
        database_url=pg_database, provider_cache_seconds=300, flower_basic_auth=OPS_AUTH
    )
    engine = make_engine(pg_settings)
    Base.metadata.create_all(engine)
    with make_sessionmaker(engine).begin() as session:
        credentials.set_provider(session, "stripe", webhook_secrets=[TEST_WEBHOOK_SECRET])
        credentials.set_provider(session, "paypal", webhook_id=pe.WEBHOOK_ID, config={"verification": "offline"})
    engine.dispose()
    app = create_app(pg_settings, enqueue=Enqueued(), enqueue_email=Enqueued())
    app.extensions[CERTS_EXTENSION] = CertificateCache(fetch=lambda url: pe.signing_cert().pem)
    client = app.test_client()
    body, headers = se.signed(
        se.event("invoice.paid", {"id": se.unique("in"), "object": "invoice"}), TEST_WEBHOOK_SECRET
    )
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200  # the secret is cached now

    name = make_url(pg_database).database
    _store_refuses_connections(pg_url, name, refuse=True)
    app.extensions["billhook"].dispose()  # the pools' connections were ended with the rest
    yield app
    _store_refuses_connections(pg_url, name, refuse=False)
    app.extensions["billhook"].dispose()


def _assert_503(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.json["error"]["code"] == "store_unavailable"


def test_stripe_intake_answers_503_while_the_store_refuses_connections(down_app):
    evt = se.event("invoice.paid", {"id": se.unique("in"), "object": "invoice"})
    body, headers = se.signed(evt, TEST_WEBHOOK_SECRET)

    _assert_503(down_app.test_client().post("/webhooks/stripe", data=body, headers=headers))


def test_paypal_intake_answers_503_while_the_store_refuses_connections(down_app):
    body, headers = pe.signed(pe.event("CUSTOMER.DISPUTE.CREATED", {"dispute_id": "PP-D-1"}))

    _assert_503(down_app.test_client().post("/webhooks/paypal", data=body, headers=headers))


def test_the_apis_and_the_ops_page_answer_503_while_the_store_refuses_connections(down_app, settings):
    client = down_app.test_client()
    bearer = {"Authorization": f"Bearer {issue_token(settings, 'acct_1')}"}
    email = {"template": "welcome", "to": "ada@example.com", "idempotency_key": "k-1"}
    ops = {"Authorization": "Basic " + base64.b64encode(OPS_AUTH.encode()).decode()}

    _assert_503(client.get("/api/v1/billing/account", headers=bearer))
    _assert_503(client.get("/api/v1/billing/plans"))
    _assert_503(client.post("/api/v1/internal/emails", json=email, headers=SERVICE))
    _assert_503(
        client.post(
            "/api/v1/internal/credits/debit",
            json={"account_id": "a", "amount": 1, "idempotency_key": "k"},
            headers=SERVICE,
        )
    )
    _assert_503(client.get("/ops", headers=ops))
