"""`billhook accounts create/show`: what ops see of a customer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from shared import inbox, processing
from shared.models import Subscription
from tests.factories import stripe_events as se


def subscribe(billhook, account_id: str, plan_id: str = "growth") -> None:
    """Run a signed-up customer's checkout through the handlers, as the worker would."""
    evt = se.event(
        "checkout.session.completed", se.checkout_session(account_id=account_id, mode="subscription", plan_id=plan_id)
    )
    now = datetime.now(UTC)
    with billhook.session_factory.begin() as session:
        pk = inbox.record_event(
            session,
            provider="stripe",
            event_id=evt["id"],
            type=evt["type"],
            payload=evt,
            event_created_at=now,
            handled=True,
            at=now,
        ).id
    assert processing.process_event(billhook.session_factory, pk, clock=lambda: now).outcome == "done"


def test_accounts_create_then_show(billhook):
    billhook("accounts", "create", "--id", "acct_cli", "--email", "ada@example.com", "--name", "Ada")

    result = billhook("accounts", "show", "acct_cli")

    assert "acct_cli" in result.output and "ada@example.com" in result.output and "Ada" in result.output
    assert "balance   0 credits" in result.output
    assert "plan      none" in result.output


def test_accounts_create_again_updates_the_email_and_keeps_the_name(billhook):
    billhook("accounts", "create", "--id", "acct_cli", "--email", "old@example.com", "--name", "Ada")
    billhook("accounts", "create", "--id", "acct_cli", "--email", "new@example.com")

    shown = json.loads(billhook("accounts", "show", "acct_cli", "--json").output)

    assert (shown["email"], shown["name"]) == ("new@example.com", "Ada")


def test_accounts_show_json_has_the_balance_subscription_and_ledger(billhook):
    billhook("seed")
    subscribe(billhook, "acct_sub", plan_id="growth")

    shown = json.loads(billhook("accounts", "show", "acct_sub", "--json").output)

    assert shown["balance"] == 12_000
    assert shown["subscription"]["plan_id"] == "growth"
    assert shown["subscription"]["status"] == "active"
    assert shown["subscription"]["provider"] == "stripe"
    assert [(e["amount"], e["kind"]) for e in shown["ledger"]] == [(12_000, "subscription_grant")]


def test_accounts_show_in_text_names_the_plan_and_the_ledger(billhook):
    billhook("seed")
    subscribe(billhook, "acct_txt", plan_id="scale")

    output = billhook("accounts", "show", "acct_txt").output

    assert "balance   20000 credits" in output
    assert "scale (active)" in output
    assert "+20000" in output and "Scale plan credits" in output


def test_accounts_show_of_an_unknown_account_fails_saying_so(billhook):
    result = billhook("accounts", "show", "acct_nobody", ok=False)

    assert result.exit_code == 1
    assert "no account 'acct_nobody'" in result.output


def test_accounts_show_says_whether_a_past_due_account_is_still_entitled(billhook):
    billhook("seed")
    subscribe(billhook, "acct_due", plan_id="growth")
    assert "entitled  yes\n" in billhook("accounts", "show", "acct_due").output
    since = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)  # long past its 7-day grace
    with billhook.session_factory.begin() as session:
        sub = session.scalars(select(Subscription).filter_by(account_id="acct_due")).one()
        sub.status, sub.past_due_since = "past_due", since

    output = billhook("accounts", "show", "acct_due").output
    shown = json.loads(billhook("accounts", "show", "acct_due", "--json").output)

    assert "entitled  no (past due: grace ended 2026-01-17 09:30 UTC)" in output
    assert (shown["entitled"], shown["subscription"]["grace_ends_at"]) == (False, "2026-01-17 09:30:00+00:00")
