"""Bearer tokens: only a valid, unexpired HS256 JWT for billhook's audience names a caller; the
account it names is created or updated from its claims."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.models import Account
from web.auth import issue_token

ACCOUNT_URL = "/api/v1/billing/account"


def _get(client, token: str | None = None, header: str | None = None):
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(ACCOUNT_URL, headers=headers)


def _claims(settings, **overrides) -> dict:
    now = datetime.now(UTC)
    claims = {"sub": "acct_1", "aud": settings.jwt_audience, "iat": now, "exp": now + timedelta(minutes=5)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_valid_token_creates_the_account_from_its_claims(client, seeded, settings):
    token = issue_token(settings, "acct_new", email="ada@example.com", name="Ada")
    response = _get(client, token)
    assert response.status_code == 200, response.json
    assert response.json["id"] == "acct_new"
    with seeded() as session:
        account = session.get(Account, "acct_new")
        assert (account.email, account.name) == ("ada@example.com", "Ada")


def test_a_later_token_updates_email_and_name_and_a_token_without_them_keeps_them(client, seeded, settings):
    _get(client, issue_token(settings, "acct_1", email="old@example.com", name="Old"))
    _get(client, issue_token(settings, "acct_1", email="new@example.com", name="New"))
    response = _get(client, issue_token(settings, "acct_1"))
    assert (response.json["email"], response.json["name"]) == ("new@example.com", "New")


def test_a_missing_header_is_401_missing_token(client):
    response = _get(client)
    assert response.status_code == 401
    assert response.json == {
        "error": {"code": "missing_token", "message": "an Authorization: Bearer <token> header is required"}
    }
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="billhook"'


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token abc"])
def test_a_header_that_is_not_a_bearer_token_is_401(client, header):
    response = _get(client, header=header)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_an_expired_token_is_401_token_expired(client, settings):
    response = _get(client, issue_token(settings, "acct_1", ttl=timedelta(minutes=-2)))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_expired"


def test_a_token_expired_within_the_clock_leeway_is_still_accepted(client, settings):
    response = _get(client, issue_token(settings, "acct_1", ttl=timedelta(seconds=-5)))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "wrong_secret",
        "wrong_audience",
        "no_audience",
        "no_exp",
        "no_sub",
        "numeric_sub",
        "long_sub",
        "bad_email",
        "hs512",
    ],
)
def test_tokens_billhook_did_not_agree_to_are_401(client, seeded, settings, case):
    secret = settings.jwt_secret
    algorithm = "HS256"
    claims = _claims(settings)
    if case == "wrong_secret":
        secret = "another-secret-of-enough-length-0123456789"
    elif case == "wrong_audience":
        claims["aud"] = "someone-else"
    elif case == "no_audience":
        del claims["aud"]
    elif case == "no_exp":
        del claims["exp"]
    elif case == "no_sub":
        del claims["sub"]
    elif case == "numeric_sub":
        claims["sub"] = 42
    elif case == "long_sub":
        claims["sub"] = "a" * 65
    elif case == "bad_email":
        claims["email"] = "not-an-email"
    elif case == "hs512":
        algorithm = "HS512"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)  # HS512 wants a longer key
        token = jwt.encode(claims, secret, algorithm=algorithm)
    response = _get(client, token)
    assert response.status_code == 401, case
    assert response.json["error"]["code"] == "invalid_token"
    with seeded() as session:
        assert session.query(Account).count() == 0


def test_an_unsigned_token_is_401(client, settings):
    token = jwt.encode(_claims(settings), None, algorithm="none")
    response = _get(client, token)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_garbage_is_401_not_500(client):
    response = _get(client, "not.a.jwt")
    assert response.status_code == 401
