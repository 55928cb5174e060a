"""Upgrade credits: the difference on an upgrade mid-period, prorated when the plan says so, nothing
on a downgrade, never more in a period than its highest plan less the plan it began on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.billing import ledger, subscriptions, upgrades
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange
from shared.models import CreditLedgerEntry, OutgoingEvent, Plan
from shared.outcome import Outcome

ACCOUNT = "acct_up"
STARTER, GROWTH, SCALE = 5_000, 12_000, 20_000  # the seed plans' included credits
PERIOD = timedelta(days=30)


@pytest.fixture
def policy(session):
    set_policy(session)


def set_policy(session) -> None:
    """growth and scale grant the difference on an upgrade to them; starter keeps the default."""
    for plan_id in ("growth", "scale"):
        session.get(Plan, plan_id).upgrade_credits = upgrades.DIFFERENCE
    session.flush()


@pytest.fixture
def sub(session, now, policy):
    return start_subscription(session, now)


def start_subscription(session, now):
    """An active starter subscription whose period began at `now`."""
    ensure_account(session, ACCOUNT)
    subscription = subscriptions.lock_or_create_subscription(
        session, provider="stripe", provider_subscription_id="sub_up", account_id=ACCOUNT
    )
    subscriptions.apply_subscription_state(
        session,
        Outcome(),
        subscription,
        SubscriptionChange(
            status="active", plan_id="starter", current_period_start=now, current_period_end=now + PERIOD
        ),
        event_at=now,
        event_id="evt_start",
        now=now,
    )
    return subscription


def change_plan(session, sub, plan_id: str, at, event_id: str, *, period_start=None, status=None) -> int:
    """Apply a plan change as a handler does, then the rule; the credits granted."""
    change = upgrades.before(sub)
    applied = subscriptions.apply_subscription_state(
        session,
        Outcome(),
        sub,
        SubscriptionChange(
            status=status,
            plan_id=plan_id,
            current_period_start=period_start,
            current_period_end=period_start + PERIOD if period_start else None,
        ),
        event_at=at,
        event_id=event_id,
        now=at,
    )
    if not applied or change.began_new_period(sub):
        return 0
    return upgrades.grant_upgrade_credits(
        session,
        Outcome(),
        sub,
        change,
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        changed_at=at,
        idempotency_key=upgrades.upgrade_key("stripe", sub.provider_subscription_id, event_id),
        at=at,
    )


def upgrade_entries(session) -> list[CreditLedgerEntry]:
    stmt = select(CreditLedgerEntry).filter_by(account_id=ACCOUNT, kind=ledger.GRANT_UPGRADE)
    return list(session.scalars(stmt.order_by(CreditLedgerEntry.id)))


def test_an_upgrade_grants_the_difference_once(session, sub, now):
    granted = change_plan(session, sub, "growth", now + timedelta(days=10), "evt_up")

    assert granted == GROWTH - STARTER
    [entry] = upgrade_entries(session)
    assert (entry.amount, entry.idempotency_key) == (GROWTH - STARTER, "upgrade:stripe:sub_up:evt_up")
    assert ledger.balance(session, ACCOUNT) == GROWTH - STARTER


def test_an_upgrade_tells_the_main_app_of_its_grant_at_the_commit(seeded, now):
    with seeded.begin() as session:
        set_policy(session)
        sub = start_subscription(session, now)
        change_plan(session, sub, "growth", now + timedelta(days=10), "evt_up")

    with seeded() as session:
        told = session.scalars(select(OutgoingEvent).filter_by(type="credits.granted")).one()
    assert told.body["data"]["credits"] == {
        "amount": GROWTH - STARTER,
        "kind": "upgrade_grant",
        "reference": "upgrade:stripe:sub_up:evt_up",
    }
    assert (sub.credits_period_start, sub.period_base_credits, sub.period_peak_credits) == (now, STARTER, GROWTH)
    assert sub.period_upgrade_credits == GROWTH - STARTER


def test_a_prorating_plan_grants_the_share_of_the_period_left_rounded_down(session, sub, now):
    session.get(Plan, "growth").prorate_upgrades = True

    granted = change_plan(session, sub, "growth", now + timedelta(days=7, seconds=1), "evt_up")

    left = PERIOD - timedelta(days=7, seconds=1)
    assert granted == (GROWTH - STARTER) * left // PERIOD == 5_366  # 5366.663… rounded down
    assert ledger.balance(session, ACCOUNT) == granted


def test_a_downgrade_grants_nothing(session, sub, now):
    change_plan(session, sub, "scale", now + timedelta(days=1), "evt_up")

    assert change_plan(session, sub, "growth", now + timedelta(days=2), "evt_down") == 0

    assert [e.amount for e in upgrade_entries(session)] == [SCALE - STARTER]


def test_a_plan_without_the_policy_grants_nothing(session, sub, now):
    session.get(Plan, "growth").upgrade_credits = upgrades.NONE

    assert change_plan(session, sub, "growth", now + timedelta(days=1), "evt_up") == 0
    assert upgrade_entries(session) == []


def test_upgrading_downgrading_and_upgrading_again_grants_the_top_plan_once(session, sub, now):
    day = timedelta(days=1)
    granted = [
        change_plan(session, sub, "scale", now + day, "evt_1"),
        change_plan(session, sub, "starter", now + 2 * day, "evt_2"),
        change_plan(session, sub, "scale", now + 3 * day, "evt_3"),
        change_plan(session, sub, "growth", now + 4 * day, "evt_4"),
        change_plan(session, sub, "scale", now + 5 * day, "evt_5"),
    ]

    assert granted == [SCALE - STARTER, 0, 0, 0, 0]
    assert ledger.balance(session, ACCOUNT) == SCALE - STARTER


def test_a_climb_in_steps_is_capped_at_the_top_plan_less_the_first(session, sub, now):
    day = timedelta(days=1)
    granted = [
        change_plan(session, sub, "growth", now + day, "evt_1"),
        change_plan(session, sub, "starter", now + 2 * day, "evt_2"),
        change_plan(session, sub, "scale", now + 3 * day, "evt_3"),  # 15000 asked, 8000 left
    ]

    assert granted == [GROWTH - STARTER, 0, SCALE - GROWTH]
    assert ledger.balance(session, ACCOUNT) == SCALE - STARTER


def test_a_period_begun_on_a_plan_earns_nothing_for_coming_back_to_it(session, sub, now):
    change_plan(session, sub, "scale", now + timedelta(days=1), "evt_up")
    renewed = now + PERIOD
    change_plan(session, sub, "scale", renewed, "evt_renewal", period_start=renewed)  # the next period, on scale

    granted = [
        change_plan(session, sub, "starter", renewed + timedelta(days=1), "evt_down"),
        change_plan(session, sub, "scale", renewed + timedelta(days=2), "evt_up_again"),
    ]

    assert granted == [0, 0]
    assert (sub.credits_period_start, sub.period_base_credits, sub.period_upgrade_credits) == (renewed, SCALE, 0)


def test_the_budget_starts_afresh_each_period(session, sub, now):
    change_plan(session, sub, "scale", now + timedelta(days=1), "evt_up")
    change_plan(session, sub, "starter", now + timedelta(days=2), "evt_down")
    renewed = now + PERIOD
    change_plan(session, sub, "starter", renewed, "evt_renewal", period_start=renewed)

    assert change_plan(session, sub, "scale", renewed + timedelta(days=1), "evt_up_again") == SCALE - STARTER
    assert ledger.balance(session, ACCOUNT) == 2 * (SCALE - STARTER)


def test_a_change_that_begins_a_new_period_grants_nothing(session, sub, now):
    # Its invoice pays the whole new period on the new plan.
    assert (
        change_plan(session, sub, "scale", now + timedelta(days=3), "evt_up", period_start=now + timedelta(days=3)) == 0
    )
    assert upgrade_entries(session) == []


def test_a_replay_grants_and_counts_nothing(session, sub, now):
    change = upgrades.before(sub)
    sub.plan_id = "growth"
    kwargs = dict(
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        changed_at=now + timedelta(days=1),
        idempotency_key="upgrade:stripe:sub_up:evt_up",
        at=now,
    )
    assert upgrades.grant_upgrade_credits(session, Outcome(), sub, change, **kwargs) == GROWTH - STARTER

    assert upgrades.grant_upgrade_credits(session, Outcome(), sub, change, **kwargs) == 0

    assert [e.amount for e in upgrade_entries(session)] == [GROWTH - STARTER]
    assert (sub.period_peak_credits, sub.period_upgrade_credits) == (GROWTH, GROWTH - STARTER)


def test_a_stale_plan_change_grants_nothing(session, sub, now):
    change_plan(session, sub, "starter", now + timedelta(days=5), "evt_newer")

    assert change_plan(session, sub, "scale", now + timedelta(days=2), "evt_older") == 0
    assert sub.plan_id == "starter"
    assert upgrade_entries(session) == []


@pytest.mark.parametrize("status", ["canceled", "incomplete", "paused"])
def test_a_subscription_not_live_gets_no_upgrade_credits(session, sub, now, status):
    assert change_plan(session, sub, "scale", now + timedelta(days=1), "evt_up", status=status) == 0
    assert upgrade_entries(session) == []


def test_a_past_due_subscription_is_live_and_gets_them(session, sub, now):
    assert change_plan(session, sub, "growth", now + timedelta(days=1), "evt_up", status="past_due") == GROWTH - STARTER
