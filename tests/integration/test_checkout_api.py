"""The checkout API over real HTTP on PostgreSQL: concurrent first checkouts share one Stripe
customer, concurrent PayPal captures grant once, and the README's flow (token → checkout → signed
webhook → a real worker → balance) ends with the plan's credits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared import credentials
from shared.billing import ledger
from shared.models import Account, Invoice, Payment
from tests.factories import stripe_events as se
from tests.fakes.paypal_api import CLIENT_ID, CLIENT_SECRET
from tests.integration import support
from web.auth import issue_token

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def api_settings(pg_settings, pg_session_factory, fake_stripe, fake_paypal):
    with pg_session_factory.begin() as session:
        credentials.set_provider(session, "paypal", api_key=CLIENT_ID, api_secret=CLIENT_SECRET)
    return pg_settings.with_overrides(stripe_api_base=fake_stripe.url, paypal_api_base=fake_paypal.url)


def _call(web, token: str, path: str, body: dict | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{web.url}/api/v1/billing/{path}"
    if body is None:
        return requests.get(url, headers=headers, timeout=30)
    return requests.post(url, json=body, headers=headers, timeout=30)


def test_concurrent_first_checkouts_share_one_stripe_customer(
    live_web_factory, api_settings, pg_session_factory, fake_stripe
):
    web = live_web_factory(api_settings)
    token = issue_token(api_settings, "acct_race", email="race@example.com")
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: _call(web, token, "stripe/credit-checkout", {"package_id": "value"}), range(8))
        )
    assert [r.status_code for r in responses] == [200] * 8
    customers = {c.form["customer"] for c in fake_stripe.calls("POST", "/v1/checkout/sessions")}
    with pg_session_factory() as session:
        assert customers == {session.get(Account, "acct_race").stripe_customer_id}


def test_concurrent_captures_of_one_paypal_order_grant_its_credits_once(
    live_web_factory, api_settings, pg_session_factory, fake_paypal
):
    web = live_web_factory(api_settings)
    token = issue_token(api_settings, "acct_pp")
    order_id = _call(web, token, "paypal/create-order", {"package_id": "pro"}).json()["order_id"]
    fake_paypal.approve(order_id)
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda _: _call(web, token, "paypal/capture-order", {"order_id": order_id}), range(6))
        )
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert sorted(r.json()["credits_granted"] for r in responses) == [0] * 5 + [5_000]
    with pg_session_factory() as session:
        assert ledger.balance(session, "acct_pp") == 5_000
        assert session.query(Payment).count() == 1
        assert session.query(Invoice).count() == 1


@pytest.mark.redis
def test_readme_flow_token_checkout_signed_webhook_worker_balance(
    live_web_factory, api_settings, worker_factory, fake_stripe
):
    worker_factory(api_settings, concurrency=1)
    web = live_web_factory(api_settings)
    token = issue_token(api_settings, "acct_readme", email="ada@example.com")
    started = _call(web, token, "stripe/checkout", {"plan_id": "growth"})
    assert started.status_code == 200, started.text
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    completed = se.checkout_session(
        account_id=created.form["metadata[account_id]"],
        mode="subscription",
        plan_id=created.form["metadata[plan_id]"],
        customer=created.form["customer"],
        session_id=started.json()["session_id"],
    )
    assert web.post_event(se.event("checkout.session.completed", completed)).status_code == 200
    account = support.wait_for(
        lambda: (body := _call(web, token, "account").json())["balance"] and body,
        message="the worker to grant the plan's credits",
    )
    assert account["balance"] == 12_000
    assert (account["subscription"]["plan_id"], account["subscription"]["status"]) == ("growth", "active")
