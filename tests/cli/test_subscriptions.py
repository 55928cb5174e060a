"""`billhook subscriptions cancel ID [--refund]` against a local stand-in for Stripe's API, and a
flagged duplicate in `billhook accounts show`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.billing import subscriptions
from shared.billing.accounts import ensure_account
from tests.factories import stripe_events as se
from tests.fakes.black_hole import BlackHole
from tests.shared.stripe.handlers.support import ACCOUNT, CreatedSubscription, run

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())


@pytest.fixture
def cli(billhook, fake_stripe):
    billhook("seed")
    billhook.env["STRIPE_API_BASE"] = fake_stripe.url
    billhook("providers", "set", "stripe", "--api-key", "sk_test_subscriptions")
    return billhook


@pytest.fixture
def two_live(cli, fake_stripe) -> tuple[CreatedSubscription, CreatedSubscription]:
    """An account with two live subscriptions at Stripe; the later, paid, is the duplicate."""
    earlier, later = CreatedSubscription(T0, created=T0), CreatedSubscription(T0, created=T0 + 300)
    for sub in (earlier, later):
        for evt in sub.first_period():
            run(cli.session_factory, evt, NOW)
        fake_stripe.add_subscription(subscription_id=sub.id, customer=sub.customer, price_id=sub.price_id)
        fake_stripe.add_charge(sub.intent, 19900)
    return earlier, later


def shown(cli) -> dict:
    return json.loads(cli("accounts", "show", ACCOUNT, "--json").output)


def test_accounts_show_lists_the_duplicate_and_how_to_cancel_it(cli, two_live):
    earlier, later = two_live

    text = cli("accounts", "show", ACCOUNT).output

    assert f"plan      growth (active) via stripe {earlier.id}" in text
    assert f"duplicate {later.id} via stripe (active), a second subscription beside {earlier.id}" in text
    assert f"billhook subscriptions cancel {later.id} --refund" in text
    assert [(d["id"], d["duplicate_of"], d["open"]) for d in shown(cli)["duplicates"]] == [(later.id, earlier.id, True)]


def test_cancel_with_refund_asks_stripe_and_the_webhooks_change_billhook(cli, two_live, fake_stripe):
    earlier, later = two_live

    result = cli("subscriptions", "cancel", later.id, "--refund")

    assert f"subscription {later.id} of {ACCOUNT} canceled at Stripe (canceled)" in result.output
    assert "refund re_" in result.output and "199.00 USD" in result.output
    (cancel,) = fake_stripe.calls("DELETE")
    assert cancel.path == f"/v1/subscriptions/{later.id}"
    (refund,) = fake_stripe.calls("POST", "/v1/refunds")
    assert refund.form == {"payment_intent": later.intent} and refund.header("Idempotency-Key")
    # Nothing is applied locally: the duplicate stays open until Stripe's webhooks say otherwise.
    assert shown(cli)["duplicates"][0]["status"] == "active"

    deleted = later.state(at=T0 + 4000, status="canceled", event_type="customer.subscription.deleted")
    run(cli.session_factory, deleted, NOW)
    charge = se.charge(payment_intent=later.intent, amount=19900, amount_refunded=19900)
    run(cli.session_factory, se.event("charge.refunded", charge, created=T0 + 4001), NOW)

    after = shown(cli)
    assert [(d["id"], d["status"], d["open"]) for d in after["duplicates"]] == [(later.id, "canceled", False)]
    assert after["subscription"]["id"] == earlier.id and after["balance"] == 12_000
    assert "cancel it" not in cli("accounts", "show", ACCOUNT).output


def test_running_it_again_cancels_nothing_twice_and_replays_the_same_refund(cli, two_live, fake_stripe):
    _, later = two_live
    cli("subscriptions", "cancel", later.id, "--refund")

    again = cli("subscriptions", "cancel", later.id, "--refund")

    assert "had already ended at Stripe (canceled)" in again.output
    assert len(fake_stripe.calls("DELETE")) == 1
    first, second = fake_stripe.calls("POST", "/v1/refunds")
    assert first.header("Idempotency-Key") == second.header("Idempotency-Key")
    assert len(fake_stripe.refunds) == 1


def test_an_unknown_subscription_is_a_clear_error_and_stripe_is_not_called(cli, fake_stripe):
    result = cli("subscriptions", "cancel", "sub_nope", ok=False)

    assert result.exit_code == 1
    assert "no subscription 'sub_nope'" in result.output
    assert fake_stripe.requests == []


def test_a_paypal_subscription_is_refused_naming_its_provider(cli, fake_stripe):
    with cli.session_factory.begin() as session:
        ensure_account(session, ACCOUNT)
        subscriptions.lock_or_create_subscription(
            session, provider="paypal", provider_subscription_id="I-BW452GLLEP1G", account_id=ACCOUNT
        )

    result = cli("subscriptions", "cancel", "I-BW452GLLEP1G", ok=False)

    assert result.exit_code == 1 and "billed through paypal, not Stripe" in result.output
    assert fake_stripe.requests == []


def test_refund_without_a_paid_payment_is_refused_before_anything_is_canceled(cli, fake_stripe):
    sub = CreatedSubscription(T0, created=T0)
    run(cli.session_factory, sub.state(at=T0 + 1, status="incomplete"), NOW)
    fake_stripe.add_subscription(subscription_id=sub.id, customer=sub.customer, price_id=sub.price_id)

    result = cli("subscriptions", "cancel", sub.id, "--refund", ok=False)

    assert result.exit_code == 1 and "has no paid payment: nothing to refund" in result.output
    assert fake_stripe.requests == []


def test_a_stripe_that_does_not_answer_is_a_timeout_saying_it_is_safe_to_retry(cli, two_live):
    _, later = two_live
    hole = BlackHole()
    try:
        cli.env["STRIPE_API_BASE"] = hole.url
        cli("providers", "set", "stripe", "--config", '{"timeout_seconds": 0.5, "max_network_retries": 0}')

        result = cli("subscriptions", "cancel", later.id, ok=False)
    finally:
        hole.close()

    assert result.exit_code == 1
    assert "no response from Stripe within billhook's timeout" in result.output
    assert "run the command again (it is safe)" in result.output
