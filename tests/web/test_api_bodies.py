"""API bodies from authenticated callers: every text that would reach the store is checked first,
and what the store could not keep (or what would be trimmed into another account) is a 400 JSON
error that stores nothing, on SQLite and on PostgreSQL (where these were 500s)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from shared.models import Account, CreditLedgerEntry, EmailOutbox
from tests.conftest import Enqueued
from web import create_app
from web.auth import issue_token

SERVICE = {"Authorization": "Bearer test-service-token", "Content-Type": "application/json"}
NESTED_3000 = b'{"a":' * 3000 + b"1" + b"}" * 3000
DEEP_20: list = [1]
for _ in range(20):
    DEEP_20 = [DEEP_20]


@pytest.fixture
def api(any_store):
    app = create_app(any_store.settings, enqueue=Enqueued(), enqueue_email=Enqueued())
    yield app.test_client()
    app.extensions["billhook"].dispose()


def _count(store, model) -> int:
    with store.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def _email(**overrides) -> dict:
    return {"template": "welcome", "to": "ada@example.com", "idempotency_key": "k-1", **overrides}


def _assert_400(response, code: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.json["error"]["code"] == code and response.json["error"]["message"]


EMAIL_BODIES = {
    "to with NUL": (_email(to="ada\x00@example.com"), "invalid_field"),
    "to with a lone surrogate": (_email(to="ada\ud800@example.com"), "invalid_body"),
    "to too long": (_email(to="a" * 64 + "@" + "b" * 300), "invalid_field"),
    "to padded": (_email(to=" ada@example.com"), "invalid_field"),
    "to with a newline": (_email(to="ada@example.com\n"), "invalid_field"),
    "account_id with NUL": (_email(to=None, account_id="acct\x00"), "invalid_field"),
    "account_id with a lone surrogate": (_email(to=None, account_id="acct\udc00"), "invalid_body"),
    "account_id too long": (_email(to=None, account_id="a" * 65), "invalid_field"),
    "account_id padded": (_email(to=None, account_id="acct_1 "), "invalid_field"),
    "key with a newline": (_email(idempotency_key="k-1\n"), "invalid_idempotency_key"),
    "context NUL": (_email(context={"name": "Ada\x00"}), "invalid_context"),
    "context lone surrogate": (_email(context={"name": "\udfff"}), "invalid_body"),
    "context key NUL": (_email(context={"na\x00me": "Ada"}), "invalid_context"),
    "context integer past 64 bits": (_email(context={"n": 2**64}), "invalid_context"),
    "context 20 deep": (_email(context={"a": DEEP_20}), "invalid_context"),
}


@pytest.mark.parametrize("body, code", EMAIL_BODIES.values(), ids=EMAIL_BODIES.keys())
def test_an_email_request_the_store_cannot_keep_is_400_and_queues_nothing(api, any_store, body, code):
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post("/api/v1/internal/emails", json=body, headers=SERVICE)

    _assert_400(response, code)
    assert _count(any_store, EmailOutbox) == 0
    assert _count(any_store, Account) == 0


HEAD = b'{"template":"welcome","to":"a@example.com","idempotency_key":"k",'
RAW_EMAIL_BODIES = {
    "NaN in context": HEAD + b'"context":{"n":NaN}}',
    "Infinity in context": HEAD + b'"context":{"n":Infinity}}',
    "3000-deep context": HEAD + b'"context":' + NESTED_3000 + b"}",
    "lone surrogate escape in to": b'{"template":"welcome","to":"a\\ud800@example.com","idempotency_key":"k"}',
    "3000-deep body": NESTED_3000,
    "a byte order mark": b'\xef\xbb\xbf{"template":"welcome","to":"a@example.com","idempotency_key":"k"}',
    "not UTF-8": b'{"template":"welcome","to":"\xff@example.com","idempotency_key":"k"}',
}


@pytest.mark.parametrize("raw", RAW_EMAIL_BODIES.values(), ids=RAW_EMAIL_BODIES.keys())
def test_an_email_body_that_is_not_standard_json_is_400_not_500(api, any_store, raw):
    response = api.post("/api/v1/internal/emails", data=raw, headers=SERVICE)

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.is_json and response.json["error"]["code"] in ("invalid_body", "invalid_context")
    assert _count(any_store, EmailOutbox) == 0


DEBIT = {"account_id": "acct_1", "amount": 1, "idempotency_key": "d"}
DEBIT_BODIES = {
    "account_id with NUL": {"account_id": "acct\x00", "amount": 1, "idempotency_key": "d"},
    "account_id padded": {"account_id": "acct_1\n", "amount": 1, "idempotency_key": "d"},
    "description with NUL": {**DEBIT, "description": "x\x00"},
    "description on two lines": {**DEBIT, "description": "a\nb"},
    "description lone surrogate": {**DEBIT, "description": "\ud800"},
    "amount past 64 bits": {"account_id": "acct_1", "amount": 2**70, "idempotency_key": "d"},
}


@pytest.mark.parametrize("body", DEBIT_BODIES.values(), ids=DEBIT_BODIES.keys())
def test_a_debit_the_store_cannot_keep_is_400_and_takes_nothing(api, any_store, body):
    response = api.post("/api/v1/internal/credits/debit", json=body, headers=SERVICE)

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json["error"]["code"] in ("invalid_field", "invalid_body")  # a lone surrogate fails the parser
    assert _count(any_store, CreditLedgerEntry) == 0


def test_a_valid_email_request_is_still_queued(api, any_store):
    response = api.post("/api/v1/internal/emails", json=_email(context={"note": "line one\nline two"}), headers=SERVICE)

    assert response.status_code == 202, response.json
    assert _count(any_store, EmailOutbox) == 1


# -- the billing API --------------------------------------------------------------------------

BILLING = {
    "/api/v1/billing/stripe/checkout": "plan_id",
    "/api/v1/billing/stripe/credit-checkout": "package_id",
    "/api/v1/billing/paypal/create-order": "package_id",
    "/api/v1/billing/paypal/capture-order": "order_id",
    "/api/v1/billing/paypal/create-subscription": "plan_id",
}
BAD_IDS = ["", " growth", "growth ", "growth\n", "gro\x00wth", "gro\ud800wth", "g" * 101, "gröwth", "a/b", 7, None]


@pytest.mark.parametrize("path, field", BILLING.items())
@pytest.mark.parametrize("value", BAD_IDS, ids=[repr(v)[:20] for v in BAD_IDS])
def test_a_billing_id_that_is_not_an_item_id_is_400(api, any_store, path, field, value):
    token = issue_token(any_store.settings, "acct_1")

    response = api.post(path, json={field: value}, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json["error"]["code"] in ("invalid_field", "invalid_body")  # a lone surrogate fails the parser


@pytest.mark.parametrize("raw", [b'{"plan_id": NaN}', NESTED_3000, b'\xef\xbb\xbf{"plan_id": "growth"}', b"[1]"])
def test_a_billing_body_that_is_not_a_standard_json_object_is_400(api, any_store, raw):
    token = issue_token(any_store.settings, "acct_1")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    response = api.post("/api/v1/billing/stripe/checkout", data=raw, headers=headers)

    _assert_400(response, "invalid_body")


@pytest.mark.parametrize("key", ["k\x00", "k é", "k" * 101, ""])
def test_an_idempotency_key_header_outside_its_pattern_is_400(api, any_store, key):
    token = issue_token(any_store.settings, "acct_1")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}

    response = api.post("/api/v1/billing/stripe/credit-checkout", json={"package_id": "starter"}, headers=headers)

    _assert_400(response, "invalid_idempotency_key")


# -- manual payments --------------------------------------------------------------------------


@pytest.fixture
def manual_api(any_store):
    from shared import credentials

    with any_store.session_factory.begin() as session:
        credentials.set_provider(session, "manual", config={"instructions": "Contact us."})
    app = create_app(any_store.settings, enqueue=Enqueued(), enqueue_email=Enqueued())
    yield app.test_client()
    app.extensions["billhook"].dispose()


MANUAL = {"package_id": "starter", "method": "bank_transfer"}
MANUAL_BODIES = {
    "package_id padded": {**MANUAL, "package_id": "starter "},
    "package_id with NUL": {**MANUAL, "package_id": "star\x00ter"},
    "reference with NUL": {**MANUAL, "reference": "ref\x00"},
    "reference on two lines": {**MANUAL, "reference": "a\nb"},
    "account_id with NUL": {**MANUAL, "account_id": "acct\x00"},
    "account_id padded": {**MANUAL, "account_id": "acct_1 "},
}


@pytest.mark.parametrize("body", MANUAL_BODIES.values(), ids=MANUAL_BODIES.keys())
def test_a_manual_payment_request_the_store_cannot_keep_is_400(manual_api, any_store, body):
    from shared.models import ManualPayment

    internal = {"account_id": "acct_1", "idempotency_key": "mp-1", **body}
    token = issue_token(any_store.settings, "acct_1")

    if "account_id" not in body:  # the user's own route takes the account from the token
        user = {"Authorization": f"Bearer {token}"}
        _assert_400(manual_api.post("/api/v1/billing/manual-payments", json=body, headers=user), "invalid_field")
    _assert_400(manual_api.post("/api/v1/internal/manual-payments", json=internal, headers=SERVICE), "invalid_field")
    assert _count(any_store, ManualPayment) == 0


@pytest.mark.parametrize("raw", [b'{"package_id": "starter", "method": "cheque", "n": NaN}', NESTED_3000])
def test_a_manual_payment_body_that_is_not_standard_json_is_400(manual_api, any_store, raw):
    token = issue_token(any_store.settings, "acct_1")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    _assert_400(manual_api.post("/api/v1/billing/manual-payments", data=raw, headers=headers), "invalid_body")


@pytest.mark.parametrize("ref", ["MP\x00", "MP\ud800", "x" * 101, " MP-1"])
def test_looking_up_a_manual_payment_by_an_impossible_id_is_404(manual_api, any_store, ref):
    token = issue_token(any_store.settings, "acct_1")

    response = manual_api.get(
        "/api/v1/billing/manual-payments/" + quote(ref, safe="", errors="surrogatepass"),
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    assert response.is_json and response.json["error"]["code"] == "not_found"
