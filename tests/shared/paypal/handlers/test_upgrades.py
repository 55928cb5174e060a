"""Upgrade credits from a PayPal plan revision (BILLING.SUBSCRIPTION.UPDATED), delivered twice,
late or out of order, and from one billing cycle to the next."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.billing import ledger, upgrades
from shared.models import CreditLedgerEntry, Plan, Subscription
from tests.factories import paypal_events as pe
from tests.shared.paypal.handlers.support import ACCOUNT, GROWTH_CREDITS, activated, balance, only, run, status_event

SUB = "I-SUB1"
SCALE_CREDITS = 20_000
PLANS = {"growth": "P-BILLHOOK-GROWTH", "scale": "P-BILLHOOK-SCALE", "starter": "P-BILLHOOK-STARTER"}


@pytest.fixture
def policy(seeded):
    with seeded.begin() as session:
        session.get(Plan, "scale").upgrade_credits = upgrades.DIFFERENCE
    return seeded


def revised(start, at, plan_id: str, *, next_billing=None) -> dict:
    """The subscription on `plan_id` as PayPal tells it after the buyer approved a revision."""
    resource = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",  # custom_id keeps the plan of the checkout; plan_id says the plan now
        paypal_plan_id=PLANS[plan_id],
        subscription_id=SUB,
        start_time=start,
        status_update_time=at,
        next_billing_time=next_billing or start + timedelta(days=30),
    )
    return pe.event("BILLING.SUBSCRIPTION.UPDATED", resource, created=at)


def upgrade_grants(seeded) -> list[CreditLedgerEntry]:
    with seeded() as session:
        stmt = select(CreditLedgerEntry).filter_by(kind=ledger.GRANT_UPGRADE).order_by(CreditLedgerEntry.id)
        return list(session.scalars(stmt))


def test_a_revision_to_a_bigger_plan_grants_the_difference_once(policy, now):
    run(policy, activated(now), now)
    evt = revised(now, now + timedelta(days=2), "scale")

    run(policy, evt, now)
    run(policy, evt, now)

    [entry] = upgrade_grants(policy)
    assert (entry.amount, entry.idempotency_key) == (
        SCALE_CREDITS - GROWTH_CREDITS,
        f"upgrade:paypal:{SUB}:{evt['id']}",
    )
    assert balance(policy) == SCALE_CREDITS
    assert only(policy, Subscription).plan_id == "scale"


def test_a_revision_older_than_the_applied_state_grants_nothing(policy, now):
    run(policy, activated(now), now)
    run(policy, status_event("BILLING.SUBSCRIPTION.CANCELLED", now, now + timedelta(days=3)), now)
    run(policy, revised(now, now + timedelta(days=2), "scale"), now)  # approved before the cancellation

    run(policy, revised(now, now + timedelta(days=1), "scale"), now)

    assert only(policy, Subscription).status == "canceled"
    assert upgrade_grants(policy) == []


def test_revisions_in_any_order_grant_the_top_plan_at_most_once_per_cycle(policy, now):
    run(policy, activated(now), now)
    up, down, up_again = (
        revised(now, now + timedelta(days=d), p) for d, p in ((1, "scale"), (2, "starter"), (3, "scale"))
    )

    for evt in (up, up_again, down, up):
        run(policy, evt, now)

    assert [e.amount for e in upgrade_grants(policy)] == [SCALE_CREDITS - GROWTH_CREDITS]
    assert only(policy, Subscription).plan_id == "scale"


def test_the_next_billing_cycle_has_a_budget_of_its_own(policy, now):
    run(policy, activated(now), now)
    run(policy, revised(now, now + timedelta(days=1), "scale"), now)
    run(policy, revised(now, now + timedelta(days=2), "growth"), now)

    next_billing = now + timedelta(days=60)
    run(policy, revised(now, now + timedelta(days=31), "growth", next_billing=next_billing), now)
    run(policy, revised(now, now + timedelta(days=32), "scale", next_billing=next_billing), now)

    assert [e.amount for e in upgrade_grants(policy)] == [SCALE_CREDITS - GROWTH_CREDITS] * 2


def test_a_prorating_plan_grants_the_part_of_the_cycle_left(policy, now):
    with policy.begin() as session:
        session.get(Plan, "scale").prorate_upgrades = True
    run(policy, activated(now), now)  # a 30-day cycle: 2026-11-24 to 2026-12-24

    run(policy, revised(now, now + timedelta(days=10), "scale"), now)

    assert [e.amount for e in upgrade_grants(policy)] == [(SCALE_CREDITS - GROWTH_CREDITS) * 20 // 30]
