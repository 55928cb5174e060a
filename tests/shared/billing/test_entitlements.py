"""What an account is entitled to, read in one query."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event

from shared.billing import entitlements, ledger
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange, apply_subscription_state, lock_or_create_subscription
from shared.outcome import Outcome


def subscribe(session, account_id: str, status: str, at, *, provider_id: str | None = None):
    sub = lock_or_create_subscription(
        session, provider="stripe", provider_subscription_id=provider_id or f"sub_{account_id}", account_id=account_id
    )
    apply_subscription_state(
        session,
        Outcome(),
        sub,
        SubscriptionChange(status=status, plan_id="growth"),
        event_at=at,
        event_id=status,
        now=at,
    )
    return sub


def test_the_answer_takes_one_statement(seeded, engine, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_e")
        subscribe(session, "acct_e", "active", now)
        ledger.grant_credits(
            session,
            Outcome(),
            account_id="acct_e",
            credits=70,
            kind=ledger.GRANT_PURCHASE,
            description="t",
            idempotency_key="g",
            at=now,
        )
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    # (SQLite's BEGIN IMMEDIATE is the test store's transaction start, not a query)

    with seeded() as session:
        state = entitlements.entitlement(session, "acct_e", now=now)

    assert [s for s in statements if not s.startswith("BEGIN")] == [statements[-1]]
    assert statements[-1].startswith("SELECT")
    assert (state["entitled"], state["status"], state["balance"]) == (True, "active", 70)


def test_a_live_subscription_counts_before_a_newer_canceled_one(seeded, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_two")
        subscribe(session, "acct_two", "active", now, provider_id="sub_live")
        subscribe(session, "acct_two", "canceled", now + timedelta(days=1), provider_id="sub_old")

    with seeded() as session:
        state = entitlements.entitlement(session, "acct_two", now=now)

    assert (state["status"], state["entitled"]) == ("active", True)


def test_no_subscription_is_not_entitled_and_an_unknown_account_is_none(seeded, now):
    with seeded.begin() as session:
        ensure_account(session, "acct_none")

    with seeded() as session:
        assert entitlements.entitlement(session, "acct_none", now=now)["entitled"] is False
        assert entitlements.entitlement(session, "nobody", now=now) is None


def test_the_grace_is_the_plans_when_the_catalog_says(seeded, now):
    class Plan:
        past_due_grace_days = 2

    assert entitlements.grace_days(Plan()) == 2
    assert entitlements.grace_days(None) == entitlements.DEFAULT_GRACE_DAYS
