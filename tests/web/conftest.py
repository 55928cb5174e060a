"""Fixtures for the edge's tests that must hold on both stores: PostgreSQL refuses what SQLite
keeps (NUL in text, a lone surrogate or NaN in json, integers past the column's range), so a
check that only SQLite ever saw could hide a 500."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import sessionmaker

from shared import credentials
from shared.billing import catalog
from shared.config import Settings
from shared.db import make_engine, make_sessionmaker
from shared.models import Base
from tests.conftest import TEST_WEBHOOK_SECRET
from web.auth import issue_token


@dataclass
class Store:
    settings: Settings
    session_factory: sessionmaker


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, settings, seeded):
    """The unit tests' SQLite store, then the same seed on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield Store(settings, seeded)
        return
    request.applymarker(pytest.mark.postgres)
    pg_settings = settings.with_overrides(database_url=request.getfixturevalue("pg_database"))
    engine = make_engine(pg_settings)
    Base.metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        catalog.seed_catalog(session)
        credentials.set_provider(session, "stripe", webhook_secrets=[TEST_WEBHOOK_SECRET], api_key="sk_test_123")
    yield Store(pg_settings, factory)
    engine.dispose()


@pytest.fixture
def auth(settings):
    """`auth(account_id="acct_1", **claims)`: the headers of a caller with the main app's JWT."""

    def headers(account_id: str = "acct_1", **claims) -> dict:
        return {"Authorization": f"Bearer {issue_token(settings, account_id, **claims)}"}

    return headers
