"""The JWT claims parser under arbitrary claims: a 401, or a caller whose every field the store
keeps as given (no trimming); and on PostgreSQL a validly signed token with any claims is a 200
or a 401, never a 5xx, and never an account beside the one it resembles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models import Account
from tests.conftest import Enqueued
from tests.fuzz.strategies import any_text, json_values, plausible_id, tainted
from web import create_app
from web.auth import MAX_ACCOUNT_ID, MAX_EMAIL, MAX_NAME, parse_claims
from web.errors import ApiError

claims = st.fixed_dictionaries(
    {"sub": st.one_of(plausible_id, tainted("acct_1"), json_values)},
    optional={
        "email": st.one_of(st.emails(), tainted("ada@example.com"), any_text, json_values),
        "name": st.one_of(tainted("Ada Lovelace"), any_text, json_values),
    },
)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@given(claims=claims)
@settings(max_examples=400)
def test_claims_are_refused_with_401_or_kept_exactly(claims):
    try:
        caller = parse_claims(claims)
    except ApiError as exc:
        assert exc.status == 401 and exc.code == "invalid_token"
        return
    assert caller.account_id == claims["sub"]  # never trimmed into another id
    assert caller.account_id.strip() == caller.account_id and caller.account_id.isprintable()
    assert 0 < len(caller.account_id) <= MAX_ACCOUNT_ID and _storable(caller.account_id)
    if caller.email is not None:
        assert caller.email == claims["email"] and len(caller.email) <= MAX_EMAIL and caller.email.isprintable()
    if caller.name is not None:
        assert caller.name == claims["name"] and len(caller.name) <= MAX_NAME and _storable(caller.name)


@pytest.fixture
def pg_app(settings, pg_database):
    from shared.db import make_sessionmaker
    from tests.web.webhooks.test_stripe import postgresql_store

    pg_settings, engine = postgresql_store(settings, pg_database)
    app = create_app(pg_settings, enqueue=Enqueued())
    yield app, make_sessionmaker(engine)
    app.extensions["billhook"].dispose()
    engine.dispose()


@pytest.mark.postgres
@given(claims=claims)
@settings(max_examples=80)
def test_a_signed_token_with_any_claims_is_200_or_401_on_postgresql(pg_app, settings, claims):
    app, session_factory = pg_app
    now = datetime.now(UTC)
    token = jwt.encode(
        {**claims, "aud": settings.jwt_audience, "exp": now + timedelta(minutes=5)}, settings.jwt_secret, "HS256"
    )

    response = app.test_client().get("/api/v1/billing/account", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code in (200, 401), response.get_data(as_text=True)[:300]
    assert response.is_json
    if response.status_code == 200:
        with session_factory() as session:
            assert session.get(Account, claims["sub"]) is not None
