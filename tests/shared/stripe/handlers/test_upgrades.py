"""Upgrade credits from `customer.subscription.updated`, delivered twice, late or out of order."""

from __future__ import annotations

import pytest

from shared.billing import ledger, upgrades
from shared.models import Plan, Subscription
from tests.factories import stripe_events as se
from tests.shared.stripe.handlers.support import DAY, StripeSubscription, balance, ledger_entries, only, run

GROWTH, SCALE = 12_000, 20_000
SCALE_PRICE = "price_billhook_scale_monthly"
STARTER_PRICE = "price_billhook_starter_monthly"


@pytest.fixture
def policy(seeded):
    with seeded.begin() as session:
        session.get(Plan, "scale").upgrade_credits = upgrades.DIFFERENCE
    return seeded


@pytest.fixture
def growth(policy, now, t0) -> StripeSubscription:
    """A growth subscription whose first period (t0 to t0 + 30 days) is paid and granted."""
    sub = StripeSubscription(t0)
    run(policy, sub.updated(at=t0, event_type="customer.subscription.created"), now)
    run(policy, sub.checkout_completed(), now)
    assert balance(policy) == GROWTH
    return sub


def upgrade_grants(seeded) -> list[int]:
    return [e.amount for e in ledger_entries(seeded) if e.kind == ledger.GRANT_UPGRADE]


def test_an_upgrade_mid_period_grants_the_difference_once_however_often_delivered(policy, growth, now, t0):
    evt = growth.updated(at=t0 + DAY, price_id=SCALE_PRICE)

    run(policy, evt, now)
    run(policy, evt, now)
    run(policy, se.event(evt["type"], evt["data"]["object"], created=evt["created"]), now)  # re-sent, new id

    assert upgrade_grants(policy) == [SCALE - GROWTH]
    assert balance(policy) == SCALE
    [entry] = [e for e in ledger_entries(policy) if e.kind == ledger.GRANT_UPGRADE]
    assert entry.idempotency_key == f"upgrade:stripe:{growth.id}:{evt['id']}"


def test_an_upgrade_older_than_an_applied_downgrade_grants_nothing(policy, growth, now, t0):
    up = growth.updated(at=t0 + DAY, price_id=SCALE_PRICE)
    down = growth.updated(at=t0 + 2 * DAY, price_id=STARTER_PRICE)

    run(policy, down, now)
    run(policy, up, now)  # stale: the subscription is on starter now

    assert only(policy, Subscription).plan_id == "starter"
    assert upgrade_grants(policy) == []


def test_up_down_and_up_again_in_a_period_grants_the_top_plan_once(policy, growth, now, t0):
    for day, price in enumerate(
        (SCALE_PRICE, STARTER_PRICE, SCALE_PRICE, "price_billhook_growth_monthly", SCALE_PRICE)
    ):
        run(policy, growth.updated(at=t0 + (day + 1) * DAY, price_id=price), now)

    assert upgrade_grants(policy) == [SCALE - GROWTH]
    assert balance(policy) == SCALE


def test_a_prorating_plan_grants_the_part_of_the_period_left(policy, growth, now, t0):
    with policy.begin() as session:
        session.get(Plan, "scale").prorate_upgrades = True

    run(policy, growth.updated(at=t0 + 12 * DAY, price_id=SCALE_PRICE), now)

    assert upgrade_grants(policy) == [(SCALE - GROWTH) * 18 // 30]


def test_a_change_that_restarts_the_billing_cycle_grants_only_through_its_invoice(policy, growth, now, t0):
    restarted = t0 + 3 * DAY
    run(
        policy,
        growth.updated(at=restarted, price_id=SCALE_PRICE, period_start=restarted, period_end=restarted + 30 * DAY),
        now,
    )

    assert upgrade_grants(policy) == []


def test_a_past_due_subscription_still_gets_them_a_canceled_one_does_not(policy, growth, now, t0):
    run(policy, growth.updated(at=t0 + DAY, status="past_due"), now)
    run(policy, growth.updated(at=t0 + 2 * DAY, status="past_due", price_id=SCALE_PRICE), now)
    assert upgrade_grants(policy) == [SCALE - GROWTH]

    other = StripeSubscription(t0 + 40 * DAY)
    run(policy, other.updated(at=other.t0, event_type="customer.subscription.created"), now)
    run(policy, other.updated(at=other.t0 + DAY, status="canceled", price_id=SCALE_PRICE), now)
    assert upgrade_grants(policy) == [SCALE - GROWTH]
