"""billhook against localstripe, an independent Stripe fake nobody here wrote: run as its own
process, driven through the `stripe` SDK and billhook's own Stripe client, delivering its signed
webhooks to billhook's /webhooks/stripe over real HTTP, handled by a real Celery worker.

localstripe renders every event in API version 2017-08-15, older than the range billhook reads:
each event billhook handles must fail saying so, none may succeed with no effect (before billhook
read `api_version`, every one of them succeeded, leaving payments with no plan and no credits).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
import stripe
from sqlalchemy import func, select

from shared.dispatch import is_handled
from shared.errors import PermanentError
from shared.models import CreditLedgerEntry, Payment, Subscription, WebhookEvent
from shared.stripe import reconcile
from shared.stripe.client import StripeGateway
from tests.conftest import TEST_WEBHOOK_SECRET, service_missing
from tests.integration import support

pytestmark = pytest.mark.redis

LOCALSTRIPE_VERSION = "2017-08-15"
PLAN_PRICE = "price_billhook_growth_monthly"  # the seeded growth plan's Stripe price id
# The event types localstripe sends for the calls below that billhook handles.
HANDLED = {"customer.subscription.created", "invoice.payment_succeeded", "customer.subscription.deleted"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def localstripe(tmp_path) -> Iterator[str]:
    """localstripe on a free loopback port, as a separate process; its base URL."""
    if importlib.util.find_spec("localstripe") is None:
        service_missing("localstripe (pip install -r requirements-dev.txt)")
    port = _free_port()
    log = (tmp_path / "localstripe.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        support.wait_for(lambda: _answers(base, process), timeout=20, message="localstripe answers")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _answers(base: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"localstripe exited with {process.returncode}")
    try:
        return requests.get(f"{base}/v1/customers", auth=("sk_test_localstripe", ""), timeout=1).ok
    except requests.ConnectionError:
        return False


def _customer_with_card(sdk: stripe.StripeClient, gateway: StripeGateway, account_id: str, number: str) -> str:
    customer = gateway.create_customer(
        account_id=account_id, email=f"{account_id}@example.com", name=None, idempotency_key=f"ls-{account_id}"
    )
    card = {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    token = sdk.v1.tokens.create(params={"card": card})
    sdk.v1.customers.payment_sources.create(customer["id"], params={"source": token.id})
    return customer["id"]


def _subscribe(sdk: stripe.StripeClient, customer: str, account_id: str) -> str:
    subscription = sdk.v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"plan": PLAN_PRICE}],
            "metadata": {"account_id": account_id, "plan_id": "growth"},
        }
    )
    return subscription.id


def _settled(session_factory) -> list[WebhookEvent] | None:
    """Every stored event once each handled type has come and none waits for a run."""
    with session_factory() as session:
        rows = list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))
    if not {r.type for r in rows} >= HANDLED or any(r.status == "received" for r in rows):
        return None
    return rows


def test_localstripe_events_in_2017_08_15_fail_naming_their_version_and_change_nothing(
    localstripe, store_settings, store_session_factory, worker_factory, live_web
):
    worker_factory(store_settings, concurrency=1)
    registered = requests.post(
        f"{localstripe}/_config/webhooks/billhook",
        data={"url": f"{live_web.url}/webhooks/stripe", "secret": TEST_WEBHOOK_SECRET},
        timeout=5,
    )
    assert registered.status_code == 200, registered.text
    settings = store_settings.with_overrides(stripe_api_base=localstripe)
    with store_session_factory() as session:
        gateway = StripeGateway.from_store(session, settings)  # billhook's client, pointed at localstripe
    sdk = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})
    sdk.v1.plans.create(
        params={
            "id": PLAN_PRICE,
            "amount": 19900,
            "currency": "usd",
            "interval": "month",
            "product": {"name": "Growth"},
        }
    )

    paying = _customer_with_card(sdk, gateway, "acct_ls_paying", "4242424242424242")
    paid = _subscribe(sdk, paying, "acct_ls_paying")
    declined = _customer_with_card(sdk, gateway, "acct_ls_declined", "4000000000000341")
    _subscribe(sdk, declined, "acct_ls_declined")
    sdk.v1.subscriptions.cancel(paid)

    rows = support.wait_for(lambda: _settled(store_session_factory), timeout=60, message="localstripe's webhooks")

    assert {r.payload["api_version"] for r in rows} == {LOCALSTRIPE_VERSION}
    for row in rows:
        if is_handled("stripe", row.type):
            assert row.status == "failed", (row.type, row.status)
            assert f"Stripe API version {LOCALSTRIPE_VERSION} is older than the supported range" in row.last_error
        else:
            assert row.status == "ignored", (row.type, row.status)
    with store_session_factory() as session:
        for model in (Payment, CreditLedgerEntry, Subscription):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__

    # What billhook's own client fetches from localstripe is in 2017-08-15 shapes too, whatever
    # version it asks for: a subscription sync fails naming the field it lacks, and changes nothing.
    with pytest.raises(PermanentError, match=r"items\.data\[\]\.current_period_start"):
        reconcile.sync_stripe_subscription(
            store_session_factory, settings, paid, now=datetime.now(UTC), gateway=gateway
        )

    ready = requests.get(f"{live_web.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert any(LOCALSTRIPE_VERSION in w and "they fail" in w for w in ready.json()["warnings"])
    assert ready.json()["stripe_api_versions"][LOCALSTRIPE_VERSION] == len(rows)


def test_billhooks_client_cancels_now_and_refunds_in_full_against_localstripe(localstripe):
    gateway = StripeGateway("sk_test_localstripe", api_base=localstripe, timeout=10)
    sdk = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})
    sdk.v1.plans.create(
        params={"id": PLAN_PRICE, "amount": 19900, "currency": "usd", "interval": "month", "product": {"name": "G"}}
    )
    customer = _customer_with_card(sdk, gateway, "acct_ls_duplicate", "4242424242424242")
    subscription_id = _subscribe(sdk, customer, "acct_ls_duplicate")
    (invoice,) = sdk.v1.invoices.list(params={"subscription": subscription_id}).data
    charge = invoice.to_dict()["charge"]  # 2017-08-15 shapes: the invoice names its Charge (expanded here)
    charge_id = charge["id"] if isinstance(charge, dict) else charge

    canceled = gateway.cancel_subscription_now(subscription_id)
    refund = gateway.refund(charge_id, idempotency_key=f"billhook:refund:stripe:{invoice.id}")

    assert canceled["status"] == "canceled"
    assert gateway.retrieve_subscription(subscription_id)["status"] == "canceled"
    assert (refund["object"], refund["charge"], refund["amount"]) == ("refund", charge_id, 19900)
    assert sdk.v1.charges.retrieve(charge_id).refunded is True
