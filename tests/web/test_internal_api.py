from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.models import EmailOutbox
from shared.outcome import Outcome
from tests.conftest import Enqueued

TOKEN = "test-service-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def emails_enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
def internal_app(settings, seeded, enqueued, emails_enqueued):
    from web import create_app

    return create_app(settings, enqueue=enqueued, enqueue_email=emails_enqueued)


@pytest.fixture
def api(internal_app):
    return internal_app.test_client()


def _rows(session_factory) -> list[EmailOutbox]:
    with session_factory() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def _grant(session_factory, account_id: str, credits: int, *, threshold: int = 100, email="ada@example.com"):
    from datetime import UTC, datetime

    with session_factory.begin() as session:
        ensure_account(session, account_id, email=email, name="Ada").low_credits_threshold = threshold
        ledger.grant_credits(
            session,
            Outcome(),
            account_id=account_id,
            credits=credits,
            kind=ledger.GRANT_PURCHASE,
            description="test",
            idempotency_key=f"grant:{account_id}:{credits}",
            at=datetime.now(UTC),
        )


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, code",
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer nope"}, "invalid_token"),
        ({"Authorization": TOKEN}, "missing_token"),
    ],
)
def test_requests_without_the_service_token_are_401(api, headers, code):
    response = api.post("/api/v1/internal/emails", json={}, headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_user_jwt_is_not_a_service_token(api, settings):
    from web.auth import issue_token

    response = api.post(
        "/api/v1/internal/credits/debit",
        json={"account_id": "a", "amount": 1, "idempotency_key": "k"},
        headers={"Authorization": f"Bearer {issue_token(settings, 'a')}"},
    )
    assert response.status_code == 401


# -- emails -----------------------------------------------------------------------------------


def test_password_reset_is_queued_once_per_key_and_enqueued_after_commit(api, seeded, emails_enqueued):
    body = {
        "template": "password_reset",
        "to": "ada@example.com",
        "context": {"reset_url": "https://app.example.com/reset?t=abc"},
        "idempotency_key": "reset-123",
    }
    first = api.post("/api/v1/internal/emails", json=body, headers=AUTH)
    again = api.post("/api/v1/internal/emails", json=body, headers=AUTH)

    assert first.status_code == 202 and first.json["duplicate"] is False
    assert again.status_code == 200 and again.json["duplicate"] is True
    [row] = _rows(seeded)
    assert first.json["id"] == again.json["id"] == row.id
    assert (row.template, row.recipient, row.idempotency_key) == ("password_reset", "ada@example.com", "api:reset-123")
    assert emails_enqueued == [row.id]


def test_an_account_id_supplies_the_address_and_name(api, seeded):
    with seeded.begin() as session:
        ensure_account(session, "acct_7", email="grace@example.com", name="Grace")
    response = api.post(
        "/api/v1/internal/emails",
        json={"template": "welcome", "account_id": "acct_7", "idempotency_key": "welcome-acct_7"},
        headers=AUTH,
    )
    assert response.status_code == 202
    [row] = _rows(seeded)
    assert (row.recipient, row.account_id, row.context) == ("grace@example.com", "acct_7", {"name": "Grace"})


def test_the_same_key_for_another_email_is_409(api):
    body = {"template": "welcome", "to": "a@example.com", "idempotency_key": "k1"}
    assert api.post("/api/v1/internal/emails", json=body, headers=AUTH).status_code == 202
    other = api.post("/api/v1/internal/emails", json={**body, "to": "b@example.com"}, headers=AUTH)
    assert other.status_code == 409 and other.json["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    "body, status, code",
    [
        (
            {"template": "payment_confirmation", "to": "a@example.com", "idempotency_key": "k"},
            400,
            "template_not_allowed",
        ),
        ({"template": "nope", "to": "a@example.com", "idempotency_key": "k"}, 400, "template_not_allowed"),
        ({"template": "welcome", "to": "a@example.com"}, 400, "invalid_idempotency_key"),
        ({"template": "welcome", "to": "a@example.com", "idempotency_key": "bad key!"}, 400, "invalid_idempotency_key"),
        ({"template": "welcome", "to": "not-an-address", "idempotency_key": "k"}, 400, "invalid_field"),
        ({"template": "welcome", "idempotency_key": "k"}, 400, "invalid_field"),
        ({"template": "welcome", "to": "a@example.com", "idempotency_key": "k", "context": []}, 400, "invalid_context"),
        ({"template": "password_reset", "to": "a@example.com", "idempotency_key": "k"}, 400, "invalid_context"),
        ({"template": "welcome", "account_id": "acct_no_email", "idempotency_key": "k"}, 422, "no_address"),
        (
            {"template": "welcome", "to": "a@example.com", "idempotency_key": "k", "context": {"x": "y" * 20000}},
            400,
            "invalid_context",
        ),
    ],
)
def test_bad_email_requests_are_specific_4xx(api, seeded, emails_enqueued, body, status, code):
    response = api.post("/api/v1/internal/emails", json=body, headers=AUTH)
    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert _rows(seeded) == [] and emails_enqueued == []


def test_a_body_that_is_not_json_is_400(api):
    response = api.post("/api/v1/internal/emails", data=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert (response.status_code, response.json["error"]["code"]) == (400, "invalid_body")


# -- credits ----------------------------------------------------------------------------------


def _debit(api, amount, key, account_id="acct_1"):
    return api.post(
        "/api/v1/internal/credits/debit",
        json={"account_id": account_id, "amount": amount, "idempotency_key": key, "description": "API usage"},
        headers=AUTH,
    )


def test_debit_takes_credits_once_per_key(api, seeded):
    _grant(seeded, "acct_1", 500)

    first = _debit(api, 120, "job-1")
    again = _debit(api, 120, "job-1")

    assert first.status_code == 201 and first.json["balance"] == 380 and first.json["replayed"] is False
    assert again.status_code == 200 and again.json == {**first.json, "replayed": True}
    with seeded() as session:
        assert ledger.balance(session, "acct_1") == 380


def test_debit_beyond_the_balance_is_409_and_takes_nothing(api, seeded):
    _grant(seeded, "acct_1", 100)
    response = _debit(api, 101, "job-2")
    assert response.status_code == 409 and response.json["error"]["code"] == "insufficient_credits"
    with seeded() as session:
        assert ledger.balance(session, "acct_1") == 100


def test_a_reused_key_with_another_amount_is_409(api, seeded):
    _grant(seeded, "acct_1", 500)
    assert _debit(api, 10, "job-3").status_code == 201
    response = _debit(api, 20, "job-3")
    assert response.status_code == 409 and response.json["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"amount": 1, "idempotency_key": "k"}, 400, "invalid_field"),
        ({"account_id": "acct_1", "amount": 0, "idempotency_key": "k"}, 400, "invalid_field"),
        ({"account_id": "acct_1", "amount": "5", "idempotency_key": "k"}, 400, "invalid_field"),
        ({"account_id": "acct_1", "amount": True, "idempotency_key": "k"}, 400, "invalid_field"),
        ({"account_id": "acct_1", "amount": 1.5, "idempotency_key": "k"}, 400, "invalid_field"),
        ({"account_id": "acct_1", "amount": 5}, 400, "invalid_idempotency_key"),
        ({"account_id": "acct_404", "amount": 5, "idempotency_key": "k"}, 404, "account_not_found"),
    ],
)
def test_bad_debits_are_specific_4xx(api, seeded, body, status, code):
    _grant(seeded, "acct_1", 50)
    response = api.post("/api/v1/internal/credits/debit", json=body, headers=AUTH)
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_debit_that_crosses_the_threshold_warns_once_and_again_after_a_top_up(api, seeded, emails_enqueued):
    _grant(seeded, "acct_1", 150, threshold=100)

    assert _debit(api, 40, "j1").json["balance"] == 110  # still above: no email
    assert _debit(api, 20, "j2").json["balance"] == 90  # crosses: one email
    assert _debit(api, 20, "j2").json["replayed"] is True  # replayed: no second email
    assert _debit(api, 10, "j3").json["balance"] == 80  # already below: no email
    assert [r.template for r in _rows(seeded)] == ["low_credits"]
    _grant(seeded, "acct_1", 100)  # back to 180
    assert _debit(api, 100, "j4").json["balance"] == 80  # crosses again: a second email

    rows = _rows(seeded)
    assert [(r.template, r.context["balance"]) for r in rows] == [("low_credits", 90), ("low_credits", 80)]
    assert emails_enqueued == [r.id for r in rows]


def test_concurrent_debits_cannot_overdraw(api, internal_app, seeded):
    _grant(seeded, "acct_1", 100)
    statuses = []

    def debit(i):
        with internal_app.test_client() as client:
            statuses.append(_debit(client, 30, f"c-{i}").status_code)

    threads = [threading.Thread(target=debit, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 201, 201, 409, 409, 409]
    with seeded() as session:
        assert ledger.balance(session, "acct_1") == 10
