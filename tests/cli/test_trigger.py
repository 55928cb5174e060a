"""`billhook dev trigger`: each scenario's events, signed and posted to a running web, and what
they leave on the account (`billhook accounts show`)."""

from __future__ import annotations

import json

import pytest

from shared.models import WebhookEvent
from shared.models.events import EventStatus


def trigger(live_web, scenario: str, *args: str, account: str = "acct_dev") -> list[str]:
    """Trigger, then let the worker run what web accepted; the lines the command printed."""
    result = live_web.cli("dev", "trigger", scenario, "--account", account, "--url", live_web.url, *args)
    assert all(outcome == "done" for outcome in live_web.work())
    return result.output.splitlines()


def account(live_web, account_id: str = "acct_dev") -> dict:
    return json.loads(live_web.cli("accounts", "show", account_id, "--json").output)


def ledger(live_web, account_id: str = "acct_dev") -> list[tuple[int, str]]:
    return [(e["amount"], e["kind"]) for e in reversed(account(live_web, account_id)["ledger"])]


def statuses(live_web) -> set[str]:
    with live_web.cli.session_factory() as session:
        return {e.status for e in session.query(WebhookEvent)}


def test_subscribe_activates_the_plan_and_grants_its_credits_once(live_web):
    lines = trigger(live_web, "subscribe", "--plan", "growth")

    assert [line.split()[:2] for line in lines[:4]] == [
        ["200", "customer.subscription.created"],
        ["200", "checkout.session.completed"],
        ["200", "invoice.paid"],
        ["200", "invoice_payment.paid"],
    ]
    assert lines[-1] == "sent 4 event(s); see `billhook accounts show acct_dev`"
    shown = account(live_web)
    assert (shown["balance"], shown["subscription"]["plan_id"], shown["subscription"]["status"]) == (
        12_000,
        "growth",
        "active",
    )
    assert statuses(live_web) == {EventStatus.SUCCEEDED}


def test_renew_moves_the_period_on_and_grants_the_next_periods_credits(live_web):
    trigger(live_web, "subscribe", "--plan", "starter")
    first_end = account(live_web)["subscription"]["current_period_end"]

    trigger(live_web, "renew")

    shown = account(live_web)
    assert shown["balance"] == 10_000
    assert shown["subscription"]["current_period_start"] == first_end
    assert ledger(live_web) == [(5_000, "subscription_grant"), (5_000, "subscription_grant")]


def test_upgrade_and_downgrade_change_the_plan_and_keep_the_period(live_web):
    trigger(live_web, "subscribe", "--plan", "starter")
    period = account(live_web)["subscription"]["current_period_start"]

    trigger(live_web, "upgrade")
    shown = account(live_web)
    assert (shown["subscription"]["plan_id"], shown["subscription"]["current_period_start"]) == ("growth", period)
    assert shown["balance"] == 5_000  # a proration pays for the rest of the period; no new period's credits

    trigger(live_web, "downgrade")
    shown = account(live_web)
    assert (shown["subscription"]["plan_id"], shown["subscription"]["status"]) == ("starter", "active")
    assert shown["subscription"]["current_period_start"] == period


def test_payment_failed_makes_the_subscription_past_due(live_web):
    trigger(live_web, "subscribe")

    trigger(live_web, "payment-failed")

    assert account(live_web)["subscription"]["status"] == "past_due"


def test_cancel_ends_the_subscription(live_web):
    trigger(live_web, "subscribe")

    trigger(live_web, "cancel")

    assert account(live_web)["subscription"]["status"] == "canceled"


def test_buy_credits_then_refund_grants_and_takes_back_the_credits(live_web):
    trigger(live_web, "buy-credits", "--package", "pro")
    assert account(live_web)["balance"] == 5_000

    trigger(live_web, "refund")

    assert account(live_web)["balance"] == 0
    assert [amount for amount, _kind in ledger(live_web)] == [5_000, -5_000]


def test_async_payment_grants_the_credits_when_the_payment_succeeds(live_web):
    lines = trigger(live_web, "async-payment", "--package", "value")

    assert [line.split()[1] for line in lines[:2]] == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    ]
    assert account(live_web)["balance"] == 2_000


@pytest.mark.parametrize("scenario", ["renew", "upgrade", "cancel", "payment-failed"])
def test_a_subscription_scenario_without_a_subscription_says_to_subscribe_first(live_web, scenario):
    result = live_web.cli("dev", "trigger", scenario, "--url", live_web.url, ok=False)

    assert result.exit_code == 1 and "trigger subscribe first" in result.output
    assert live_web.enqueued == []


def test_refund_without_a_payment_says_what_to_trigger(live_web):
    result = live_web.cli("dev", "trigger", "refund", "--url", live_web.url, ok=False)

    assert result.exit_code == 1 and "trigger buy-credits first" in result.output


def test_trigger_with_web_down_fails_in_one_line_naming_the_url(billhook):
    billhook("seed")

    result = billhook("dev", "trigger", "subscribe", "--url", "http://127.0.0.1:1", ok=False)

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: billhook web is not answering at http://127.0.0.1:1/webhooks/stripe:"
        " start it with `make run` (or pass --url)"
    ]
