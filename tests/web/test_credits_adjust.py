"""POST /api/v1/internal/credits/adjust: a signed correction with who and why, once per key."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.billing import ledger
from shared.billing.accounts import ensure_account
from shared.models import CreditLedgerEntry
from web import create_app

SERVICE = {"Authorization": "Bearer test-service-token"}


@pytest.fixture
def api(settings, seeded, enqueued):
    with seeded.begin() as session:
        ensure_account(session, "acct_1", email="ada@example.com")
    return create_app(settings, enqueue=enqueued, enqueue_email=lambda _pk: None).test_client()


def adjust(api, **body):
    body = {"account_id": "acct_1", "amount": 250, "reason": "goodwill", "idempotency_key": "adj-1", **body}
    return api.post("/api/v1/internal/credits/adjust", json=body, headers=SERVICE)


def test_adjustment_is_applied_once_per_key_with_who_and_why(api, seeded):
    first = adjust(api, actor="support:bob")
    again = adjust(api, actor="support:bob")

    assert (first.status_code, again.status_code) == (201, 200)
    assert (first.json["balance"], again.json["replayed"]) == (250, True)
    with seeded() as session:
        entry = session.scalars(select(CreditLedgerEntry)).one()
    assert (entry.kind, entry.amount, entry.description, entry.actor) == (
        "adjustment",
        250,
        "goodwill",
        "api:support:bob",
    )


def test_negative_adjustment_may_take_the_balance_below_zero(api, seeded):
    response = adjust(api, amount=-100, reason="duplicate grant")
    assert response.status_code == 201 and response.json["balance"] == -100
    with seeded() as session:
        assert ledger.balance(session, "acct_1") == -100


@pytest.mark.parametrize(
    "override, status, code",
    [
        ({"amount": 0}, 400, "invalid_field"),
        ({"amount": "5"}, 400, "invalid_field"),
        ({"amount": True}, 400, "invalid_field"),
        ({"reason": ""}, 400, "invalid_field"),
        ({"idempotency_key": "bad key"}, 400, "invalid_idempotency_key"),
        ({"account_id": "acct_nobody"}, 404, "account_not_found"),
    ],
)
def test_bad_adjustments_are_specific_4xx(api, override, status, code):
    response = adjust(api, **override)
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_a_key_reused_for_another_amount_is_409(api):
    adjust(api)
    response = adjust(api, amount=999)
    assert (response.status_code, response.json["error"]["code"]) == (409, "idempotency_key_reused")


def test_adjust_needs_the_service_token(api):
    assert api.post("/api/v1/internal/credits/adjust", json={}).status_code == 401
