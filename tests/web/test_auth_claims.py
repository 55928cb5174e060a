"""The claims of a validly signed token: what the store cannot keep, or what would name a second
account that looks like the first, is a 401 and creates no account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.models import Account

ACCOUNT_URL = "/api/v1/billing/account"


def _token(settings, **claims) -> str:
    now = datetime.now(UTC)
    body = {"sub": "acct_1", "aud": settings.jwt_audience, "iat": now, "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode(body, settings.jwt_secret, algorithm="HS256")


def _accounts(session_factory) -> list[str]:
    with session_factory() as session:
        return [a.id for a in session.query(Account).order_by(Account.id)]


BAD_CLAIMS = [
    {"sub": "acct\x00x"},
    {"sub": "acct\ud800"},
    {"sub": "acct\x07"},
    {"sub": "acct_1 "},
    {"sub": " acct_1"},
    {"sub": "acct_1\n"},
    {"sub": "\tacct_1"},
    {"sub": "acct\u2028"},
    {"sub": ""},
    {"sub": "a" * 65},
    {"email": "ada\x00@example.com"},
    {"email": "ada@example.com\ud800"},
    {"email": "ada@example.com\n"},
    {"email": "a" * 64 + "@" + "b" * 256},
    {"email": ""},
    {"name": "Ada\x00"},
    {"name": "Ada\udfff"},
    {"name": "Ada\nLovelace"},
    {"name": "Ada\x1b[31m"},
    {"name": "n" * 201},
    {"name": 7},
]


@pytest.mark.parametrize("claims", BAD_CLAIMS, ids=[repr(c)[:40] for c in BAD_CLAIMS])
def test_a_claim_the_store_cannot_keep_or_a_padded_sub_is_401_and_creates_nothing(client, seeded, settings, claims):
    response = client.get(ACCOUNT_URL, headers={"Authorization": f"Bearer {_token(settings, **claims)}"})

    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.is_json and response.json["error"]["code"] == "invalid_token"
    assert _accounts(seeded) == []


def test_a_sub_with_a_trailing_newline_is_not_kept_beside_the_account_it_resembles(client, seeded, settings):
    ok = client.get(ACCOUNT_URL, headers={"Authorization": f"Bearer {_token(settings, sub='acct_1')}"})
    padded = client.get(ACCOUNT_URL, headers={"Authorization": f"Bearer {_token(settings, sub='acct_1 ')}"})

    assert ok.status_code == 200
    assert padded.status_code == 401
    assert _accounts(seeded) == ["acct_1"]


def test_printable_unicode_claims_are_kept_as_given(client, seeded, settings):
    token = _token(settings, sub="acct_ü", email="zoë@exämple.com", name="Zoë Ünal (ops)")

    response = client.get(ACCOUNT_URL, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200, response.json
    assert (response.json["id"], response.json["email"], response.json["name"]) == (
        "acct_ü",
        "zoë@exämple.com",
        "Zoë Ünal (ops)",
    )
