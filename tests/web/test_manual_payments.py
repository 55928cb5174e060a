"""Manual payments over HTTP: the signed-in user's request, the main app's, and the ops page's
approve/reject buttons (basic auth, form token, same origin)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from shared import credentials
from shared.billing import ledger
from shared.models import EmailOutbox, ManualPayment, Payment
from tests.conftest import Enqueued
from tests.web.test_ops import OPS, OPS_AUTH, basic, token_of
from web import create_app
from web.auth import issue_token

SERVICE = {"Authorization": "Bearer test-service-token"}
INSTRUCTIONS = "Pay to IBAN DE00 0000 0000, quoting the invoice number."


@pytest.fixture
def emails_enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
def manual_on(seeded):
    with seeded.begin() as session:
        credentials.set_provider(
            session,
            "manual",
            config={"instructions": "Contact us.", "instructions_by_method": {"bank_transfer": INSTRUCTIONS}},
        )
    return seeded


@pytest.fixture
def app(settings, seeded, enqueued, emails_enqueued):
    return create_app(
        settings.with_overrides(flower_basic_auth=OPS_AUTH), enqueue=enqueued, enqueue_email=emails_enqueued
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(settings):
    def headers(account_id: str = "acct_1", **extra) -> dict:
        token = issue_token(settings, account_id, email=f"{account_id}@example.com")
        return {"Authorization": f"Bearer {token}", **extra}

    return headers


def ask(client, user, body=None, **headers):
    return client.post(
        "/api/v1/billing/manual-payments",
        json={"package_id": "starter", "method": "bank_transfer", "reference": "T-1"} if body is None else body,
        headers=user(**headers),
    )


def test_signed_in_user_requests_a_pending_payment_with_invoice_and_instructions(client, manual_on, user):
    response = ask(client, user)

    assert response.status_code == 201, response.json
    body = response.json
    assert (body["status"], body["amount_cents"], body["method"]) == ("pending", 999, "bank_transfer")
    assert body["invoice"]["status"] == "open" and re.fullmatch(r"\d{4}-\d{6}", body["invoice"]["number"])
    assert body["invoice"]["payment_instructions"] == INSTRUCTIONS
    shown = client.get(f"/api/v1/billing/manual-payments/{body['id']}", headers=user())
    assert shown.status_code == 200 and shown.json["id"] == body["id"]


def test_a_retried_request_with_its_idempotency_key_is_the_same_payment(client, manual_on, user):
    first = ask(client, user, **{"Idempotency-Key": "click-1"})
    again = ask(client, user, **{"Idempotency-Key": "click-1"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and again.json["duplicate"]
    other = ask(client, user, {"plan_id": "growth", "method": "bank_transfer"}, **{"Idempotency-Key": "click-1"})
    assert other.status_code == 409 and other.json["error"]["code"] == "idempotency_key_reused"


def test_another_account_cannot_read_the_request(client, manual_on, user):
    pid = ask(client, user).json["id"]
    assert client.get(f"/api/v1/billing/manual-payments/{pid}", headers=user("acct_2")).status_code == 404


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"method": "bank_transfer"}, 400, "invalid_field"),
        ({"plan_id": "growth", "package_id": "starter", "method": "cheque"}, 400, "invalid_field"),
        ({"package_id": "starter", "method": "gold_bars"}, 400, "invalid_field"),
        ({"package_id": "starter", "method": "cheque", "reference": 7}, 400, "invalid_field"),
        ({"package_id": "nope", "method": "cheque"}, 404, "not_found"),
        ([1, 2], 400, "invalid_body"),
    ],
)
def test_bad_requests_are_specific_4xx(client, manual_on, user, body, status, code):
    response = ask(client, user, body)
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_without_the_manual_provider_the_endpoint_answers_503(client, user):
    response = ask(client, user)
    assert (response.status_code, response.json["error"]["code"]) == (503, "not_configured")


def test_the_main_app_requests_for_an_account_with_its_service_token(client, manual_on):
    body = {"account_id": "acct_9", "plan_id": "growth", "method": "invoice", "idempotency_key": "order-77"}

    response = client.post("/api/v1/internal/manual-payments", json=body, headers=SERVICE)
    again = client.post("/api/v1/internal/manual-payments", json=body, headers=SERVICE)

    assert (response.status_code, again.status_code) == (201, 200)
    assert response.json["invoice"]["payment_instructions"] == "Contact us."
    assert client.post("/api/v1/internal/manual-payments", json=body).status_code == 401
    no_key = {k: v for k, v in body.items() if k != "idempotency_key"}
    assert client.post("/api/v1/internal/manual-payments", json=no_key, headers=SERVICE).status_code == 400


# -- the ops page's buttons -------------------------------------------------------------------


def test_ops_page_lists_pending_payments_and_approve_grants_once(client, manual_on, user, emails_enqueued):
    pid = ask(client, user).json["id"]
    page = client.get("/ops", headers=OPS).get_data(as_text=True)
    assert f'id="payment-{pid}"' in page

    form = {"csrf_token": token_of(page)}
    first = client.post(f"/ops/manual-payments/{pid}/approve", data=form, headers=OPS)
    second = client.post(f"/ops/manual-payments/{pid}/reject", data=form, headers=OPS)

    assert first.status_code == 303 and "notice=approved" in first.headers["Location"]
    assert "notice=already_decided" in second.headers["Location"]
    with manual_on() as session:
        assert ledger.balance(session, "acct_1") == 500
        assert session.scalars(select(ManualPayment)).one().decided_by == "ops:ops"
        [email] = session.scalars(select(EmailOutbox).filter_by(template="payment_approved")).all()
    assert emails_enqueued == [email.id]  # published after the commit
    assert f'id="payment-{pid}"' not in client.get("/ops", headers=OPS).get_data(as_text=True)


def test_ops_reject_records_the_reason(client, manual_on, user):
    pid = ask(client, user).json["id"]
    token = token_of(client.get("/ops", headers=OPS).get_data(as_text=True))

    client.post(f"/ops/manual-payments/{pid}/reject", data={"csrf_token": token, "reason": "no funds"}, headers=OPS)

    with manual_on() as session:
        assert session.scalars(select(Payment)).one().status == "rejected"
        assert session.scalars(select(ManualPayment)).one().decision_reason == "no funds"
        assert ledger.balance(session, "acct_1") == 0


@pytest.mark.parametrize(
    "headers, form",
    [
        ({}, "token"),  # no basic auth
        ({"Origin": "https://evil.example"}, "token"),  # cross-site
        ({}, "none"),  # no form token
    ],
)
def test_ops_decisions_need_auth_the_form_token_and_the_same_origin(client, manual_on, user, headers, form):
    pid = ask(client, user).json["id"]
    token = token_of(client.get("/ops", headers=OPS).get_data(as_text=True))
    auth = {} if headers == {} and form == "token" else OPS
    data = {"csrf_token": token} if form == "token" else {}

    response = client.post(f"/ops/manual-payments/{pid}/approve", data=data, headers={**auth, **headers})

    assert response.status_code in (401, 403)
    with manual_on() as session:
        assert session.scalars(select(Payment)).one().status == "pending"


def test_another_ops_users_token_is_refused(client, manual_on, user):
    pid = ask(client, user).json["id"]
    audit = basic("audit", "battery-staple")
    token = token_of(client.get("/ops", headers=audit).get_data(as_text=True))
    assert re.fullmatch(r"[0-9a-f]+", token)
    response = client.post(f"/ops/manual-payments/{pid}/approve", data={"csrf_token": token}, headers=OPS)
    assert response.status_code == 403
