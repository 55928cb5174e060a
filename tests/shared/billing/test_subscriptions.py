"""Subscription state in event order, whatever order the events arrive in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.billing import subscriptions
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange
from shared.outcome import Outcome


@pytest.fixture
def sub(session):
    ensure_account(session, "acct_s")
    return subscriptions.lock_or_create_subscription(
        session, provider="stripe", provider_subscription_id="sub_1", account_id="acct_s"
    )


def apply(session, sub, at, event_id: str, **change) -> bool:
    return subscriptions.apply_subscription_state(
        session, Outcome(), sub, SubscriptionChange(**change), event_at=at, event_id=event_id, now=at
    )


def test_lock_subscription_creates_the_row_once(session, sub):
    again = subscriptions.lock_or_create_subscription(
        session, provider="stripe", provider_subscription_id="sub_1", account_id="acct_s"
    )

    assert again.id == sub.id
    assert sub.status == "incomplete"


def test_a_newer_event_applies_only_what_it_says(session, sub, now):
    apply(session, sub, now, "evt_1", status="active", plan_id="growth", cancel_at_period_end=False)

    assert apply(session, sub, now + timedelta(seconds=1), "evt_2", cancel_at_period_end=True) is True

    assert (sub.status, sub.plan_id, sub.cancel_at_period_end) == ("active", "growth", True)
    assert (sub.last_event_at, sub.last_event_id) == (now + timedelta(seconds=1), "evt_2")


def test_an_event_older_than_the_high_water_mark_changes_nothing(session, sub, now):
    apply(session, sub, now, "evt_new", status="active", plan_id="scale")

    assert apply(session, sub, now - timedelta(minutes=1), "evt_old", status="past_due", plan_id="starter") is False

    assert (sub.status, sub.plan_id, sub.last_event_id) == ("active", "scale", "evt_new")


def test_an_older_event_still_fills_in_what_nothing_newer_said(session, sub, now):
    apply(session, sub, now, "evt_new", status="canceled")

    apply(
        session,
        sub,
        now - timedelta(days=1),
        "evt_old",
        status="active",
        plan_id="growth",
        current_period_start=now - timedelta(days=1),
        current_period_end=now + timedelta(days=29),
    )

    assert (sub.status, sub.plan_id) == ("canceled", "growth")
    assert sub.current_period_end == now + timedelta(days=29)


def test_of_two_events_from_the_same_second_a_cancellation_wins(session, sub, now):
    apply(session, sub, now, "evt_deleted", status="canceled")

    assert apply(session, sub, now, "evt_updated", status="active") is False
    assert sub.status == "canceled"


def test_current_subscription_prefers_the_live_one(session, sub, now):
    apply(session, sub, now, "e1", status="canceled")
    session.flush()
    live = subscriptions.lock_or_create_subscription(
        session, provider="stripe", provider_subscription_id="sub_2", account_id="acct_s"
    )
    apply(session, live, now, "e2", status="active")
    session.flush()

    assert subscriptions.current_subscription(session, "acct_s").provider_subscription_id == "sub_2"
    assert subscriptions.current_subscription(session, "acct_nobody") is None
