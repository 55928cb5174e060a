"""The caller's invoices over HTTP, and the printable page behind its signed, short-lived link."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from shared import credentials
from shared.billing import invoices, payments
from shared.billing.accounts import ensure_account
from shared.outcome import Outcome
from tests.shared.billing.test_payments import record
from web import create_app
from web.auth import issue_token

SELLER = {"name": "Billhook Test GmbH", "address": ["1 Example Street", "10115 Berlin"], "tax_id": "DE123456789"}


def issue(factory, account: str, ref: str, at, hosted_url: str | None = None, credit: int = 0) -> str:
    with factory.begin() as session:
        ensure_account(session, account)
        payment, _ = payments.record_payment(session, Outcome(), record(account, ref, hosted_url=hosted_url), at=at)
        invoice = payments.invoice_for_payment(session, payment.id)
        if credit:
            invoices.issue_credit_note(
                session, invoice, reason=invoices.REFUND, amount_cents=credit, idempotency_key=f"t:{ref}", at=at
            )
        return invoice.number


@pytest.fixture
def app(settings, seeded, enqueued):
    with seeded.begin() as session:
        credentials.set_provider(session, "manual", config={"seller": SELLER})
    return create_app(settings, enqueue=enqueued, enqueue_email=enqueued)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(settings):
    def headers(account_id: str = "acct_1") -> dict:
        return {"Authorization": f"Bearer {issue_token(settings, account_id, email='a@example.com')}"}

    return headers


@pytest.fixture
def two_accounts(seeded, now):
    mine = issue(seeded, "acct_1", "cs_mine", now, hosted_url="https://invoice.stripe.com/i/acct_x/inv_1", credit=999)
    theirs = issue(seeded, "acct_2", "cs_theirs", now)
    return mine, theirs


def test_list_shows_only_the_callers_invoices_with_lines_credit_notes_and_links(client, user, two_accounts, now):
    mine, _ = two_accounts
    answer = client.get("/api/v1/billing/invoices", headers=user())

    assert answer.status_code == 200
    [invoice] = answer.json["invoices"]
    assert invoice["number"] == mine == f"{now.year}-000001"
    assert (invoice["status"], invoice["amount_cents"], invoice["currency"]) == ("paid", 2999, "usd")
    assert invoice["lines"] == [{"description": "Value credit package", "amount_cents": 2999, "quantity": 1}]
    assert invoice["hosted_url"] == "https://invoice.stripe.com/i/acct_x/inv_1"
    assert [(n["number"], n["reason"], n["amount_cents"]) for n in invoice["credit_notes"]] == [
        (f"CN-{now.year}-000001", "refund", 999)
    ]
    assert "/invoices/" in invoice["print_url"] and "Bearer" not in invoice["print_url"]


def test_one_invoice_is_the_callers_own_and_another_accounts_number_is_404(client, user, two_accounts):
    mine, theirs = two_accounts
    assert client.get(f"/api/v1/billing/invoices/{mine}", headers=user()).json["number"] == mine
    for number in (theirs, "2099-000001", "not a number"):
        answer = client.get(f"/api/v1/billing/invoices/{number}", headers=user())
        assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"


def test_invoices_need_a_bearer_token(client, two_accounts):
    assert client.get("/api/v1/billing/invoices").status_code == 401
    assert client.get(f"/api/v1/billing/invoices/{two_accounts[0]}").status_code == 401


def test_the_signed_link_opens_the_printable_page_without_a_token(client, user, two_accounts, settings):
    link = client.get(f"/api/v1/billing/invoices/{two_accounts[0]}", headers=user()).json["print_url"]
    assert issue_token(settings, "acct_1", email="a@example.com") not in link

    page = client.get(link)

    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert two_accounts[0] in html and "Billhook Test GmbH" in html and "DE123456789" in html
    assert re.search(r"CN-\d{4}-000001", html) and "-9.99 USD" in html and "29.99 USD" in html
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"


def tampered(link: str, **changes) -> str:
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode(query)}"


def test_a_tampered_or_expired_link_is_403(client, user, two_accounts, app):
    mine, theirs = two_accounts
    link = client.get(f"/api/v1/billing/invoices/{mine}", headers=user()).json["print_url"]
    query = parse_qs(urlsplit(link).query)
    with app.test_request_context():
        from web.invoices import sign

        expired = f"/invoices/{mine}/print?" + urlencode(
            {"account": "acct_1", "expires": "1000", "sig": sign(mine, "acct_1", 1000)}
        )
    forged = [
        tampered(link, account="acct_2"),
        tampered(link, expires=str(int(query["expires"][0]) + 3600)),
        tampered(link, sig="0" * 64),
        urlsplit(link).path.replace(mine, theirs) + "?" + urlsplit(link).query,
        expired,
    ]
    for url in forged:
        page = client.get(url)
        assert page.status_code == 403, url
        assert "invalid or has expired" in page.get_data(as_text=True)
    answer = client.get(expired, headers={"Accept": "application/json"})
    assert answer.status_code == 403 and answer.json["error"]["code"] == "invalid_link"
