"""The account summary (the frontend's account, `billhook accounts show`) answers from the same
subscription as the entitlement, with its past_due grace."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.billing import entitlements
from shared.billing.account_summary import account_summary
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import (
    SubscriptionChange,
    apply_subscription_state,
    current_subscription,
    lock_or_create_subscription,
)
from shared.models import Account, Plan
from shared.outcome import Outcome

ACCOUNT = "acct_sum"


def subscribe(session, status: str, at, *, sub_id: str = "sub_sum", plan_id: str = "growth"):
    sub = lock_or_create_subscription(session, provider="stripe", provider_subscription_id=sub_id, account_id=ACCOUNT)
    apply_subscription_state(
        session,
        Outcome(),
        sub,
        SubscriptionChange(status=status, plan_id=plan_id),
        event_at=at,
        event_id=f"{sub_id}:{status}:{at.isoformat()}",
        now=at,
    )
    session.flush()
    return sub


def summary(session, now) -> dict:
    return account_summary(session, session.get(Account, ACCOUNT), now=now)


@pytest.fixture
def past_due(session, now):
    """A growth subscription (grace: 3 days) past due since `now`."""
    ensure_account(session, ACCOUNT)
    session.get(Plan, "growth").past_due_grace_days = 3
    subscribe(session, "active", now - timedelta(days=20))
    return subscribe(session, "past_due", now)


def test_a_past_due_account_inside_its_grace_is_entitled_until_the_grace_ends(session, now, past_due):
    shown = summary(session, now + timedelta(days=2, hours=23))

    assert shown["entitled"] is True
    assert shown["subscription"]["status"] == "past_due"
    assert shown["subscription"]["grace_ends_at"] == now + timedelta(days=3)


def test_a_past_due_account_after_its_grace_is_not_entitled(session, now, past_due):
    shown = summary(session, now + timedelta(days=3))

    assert shown["entitled"] is False
    assert shown["subscription"]["grace_ends_at"] == now + timedelta(days=3)


@pytest.mark.parametrize("days_later", [1, 4])
def test_the_summary_says_what_the_entitlement_says(session, now, past_due, days_later):
    at = now + timedelta(days=days_later)
    answer = entitlements.entitlement(session, ACCOUNT, now=at)

    shown = summary(session, at)

    assert (shown["entitled"], shown["subscription"]["grace_ends_at"].isoformat()) == (
        answer["entitled"],
        answer["grace_ends_at"],
    )


def test_an_active_account_is_entitled_with_no_grace(session, now):
    ensure_account(session, ACCOUNT)
    subscribe(session, "active", now)

    shown = summary(session, now)

    assert (shown["entitled"], shown["subscription"]["grace_ends_at"]) == (True, None)


def test_an_account_without_a_subscription_is_not_entitled(session, now):
    ensure_account(session, ACCOUNT)

    assert (summary(session, now)["entitled"], summary(session, now)["subscription"]) == (False, None)


def test_current_subscription_is_the_one_the_entitlement_reads(session, now):
    ensure_account(session, ACCOUNT)
    first = subscribe(session, "canceled", now, sub_id="sub_a", plan_id="starter")
    second = subscribe(session, "canceled", now, sub_id="sub_b", plan_id="scale")
    first.updated_at = second.updated_at = now  # changed in the same instant: the later row counts
    session.flush()

    assert current_subscription(session, ACCOUNT).id == second.id
    assert entitlements.entitlement(session, ACCOUNT, now=now)["plan_id"] == "scale"

    live = subscribe(session, "past_due", now - timedelta(days=1), sub_id="sub_c", plan_id="growth")
    live.updated_at = now - timedelta(days=1)  # older than the canceled ones, but live
    session.flush()

    assert current_subscription(session, ACCOUNT).id == live.id
    assert summary(session, now)["subscription"]["id"] == "sub_c"
    assert entitlements.entitlement(session, ACCOUNT, now=now)["plan_id"] == "growth"
