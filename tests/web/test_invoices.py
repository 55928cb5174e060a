"""The caller's invoices over HTTP, and the printable page behind its signed, short-lived link."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
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


def pages(client, headers, query: str = "") -> list[list[str]]:
    """Every page's invoice numbers, following next_cursor to the end."""
    numbers, cursor = [], None
    while True:
        url = "/api/v1/billing/invoices?" + query + (f"&cursor={cursor}" if cursor else "")
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200
        numbers.append([i["number"] for i in answer.json["invoices"]])
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return numbers


def test_the_list_pages_newest_first_and_ties_on_the_issue_time_are_neither_lost_nor_repeated(
    client, user, seeded, now
):
    times = [now - timedelta(days=3), now - timedelta(days=2), now - timedelta(days=2), now - timedelta(days=2), now]
    numbers = [issue(seeded, "acct_1", f"cs_{n}", at) for n, at in enumerate(times)]
    issue(seeded, "acct_2", "cs_theirs", now)

    newest_first = [numbers[4], numbers[3], numbers[2], numbers[1], numbers[0]]
    assert pages(client, user(), "limit=2") == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert pages(client, user(), "limit=5") == [newest_first]  # a full last page names no next one


def test_the_list_answers_twenty_by_default_and_an_invoice_issued_meanwhile_shifts_nothing(client, user, seeded, now):
    numbers = [issue(seeded, "acct_1", f"cs_{n}", now - timedelta(hours=30 - n)) for n in range(22)]
    first = client.get("/api/v1/billing/invoices", headers=user()).json
    issue(seeded, "acct_1", "cs_new", now)

    second = client.get(f"/api/v1/billing/invoices?cursor={first['next_cursor']}", headers=user()).json

    assert [i["number"] for i in first["invoices"]] == numbers[:1:-1]
    assert [i["number"] for i in second["invoices"]] == numbers[1::-1] and second["next_cursor"] is None


def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "invalid_parameter"),
        ("limit=101", "invalid_parameter"),
        ("limit=ten", "invalid_parameter"),
        ("limit=%C2%B2", "invalid_parameter"),  # "²": a digit to str.isdigit, not to int()
        ("cursor=", "invalid_cursor"),
        ("cursor=not!a*cursor", "invalid_cursor"),
        ("cursor=" + "A" * 301, "invalid_cursor"),
        ("cursor=" + _cursor(["2026-01-01T00:00:00", 1]), "invalid_cursor"),  # no offset
        ("cursor=" + _cursor(["2026-01-01T00:00:00+00:00", "1"]), "invalid_cursor"),
        ("cursor=" + _cursor(["2026-01-01T00:00:00+00:00", 2**40]), "invalid_cursor"),
        ("cursor=" + _cursor(["2026-01-01T00:00:00+00:00"]), "invalid_cursor"),
        ("cursor=" + _cursor({"a": 1}), "invalid_cursor"),
        ("limt=5", "unknown_parameter"),  # misspelt: not silently paged with the default
        ("limit=5&page=2", "unknown_parameter"),
    ],
)
def test_a_bad_limit_or_cursor_is_a_400_naming_it(client, user, two_accounts, query, code):
    answer = client.get(f"/api/v1/billing/invoices?{query}", headers=user())

    assert answer.status_code == 400 and answer.json["error"]["code"] == code
