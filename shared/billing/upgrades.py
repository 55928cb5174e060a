"""Upgrade credits: what a plan change in the middle of a billing period grants, the same rule for
every provider.

A change to a plan whose catalog entry says `upgrade_credits: difference` grants the new plan's
included credits less the old plan's, prorated by the time left in the period (rounded down) when
the new plan says `prorate_upgrades`. A downgrade grants nothing. Within one period the upgrade
credits never add up to more than the highest plan's included credits reached in it less those of
the plan the period began on, so upgrading, downgrading and upgrading again earns nothing twice.

The period's budget lives on the subscription row (`credits_period_start`, `period_base_credits`,
`period_peak_credits`, `period_upgrade_credits`) and is read and written under the subscription's
row lock the handlers hold. It starts afresh at the first plan change of a period: the plan being
left then is the one the period began on. The grant is a ledger entry keyed on the event, and
the budget counts it only when that entry is new, so a replayed event grants and counts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import ledger
from shared.billing.subscriptions import LIVE_STATUSES
from shared.models import Plan, Subscription
from shared.outcome import Outcome

NONE = "none"
DIFFERENCE = "difference"
POLICIES = (NONE, DIFFERENCE)


@dataclass(frozen=True)
class PlanChange:
    """What an event's change is measured against: the subscription's plan, status and period
    start before the event was applied."""

    old_plan_id: str | None
    old_status: str | None
    old_period_start: datetime | None

    def began_new_period(self, subscription: Subscription) -> bool:
        """The event also moved the period: its invoice pays the new period on the new plan, so
        the change was no mid-period upgrade. A period not known before (a checkout tells none)
        did not move."""
        return self.old_period_start not in (None, subscription.current_period_start)


def before(subscription: Subscription) -> PlanChange:
    """The subscription's state before an event changes it; take it under the row lock."""
    return PlanChange(subscription.plan_id, subscription.status, subscription.current_period_start)


def upgrade_key(provider: str, provider_subscription_id: str, event_id: str) -> str:
    return f"upgrade:{provider}:{provider_subscription_id}:{event_id}"


def grant_upgrade_credits(
    session: Session,
    outcome: Outcome,
    subscription: Subscription,
    change: PlanChange,
    *,
    period_start: datetime | None,
    period_end: datetime | None,
    changed_at: datetime,
    idempotency_key: str,
    at: datetime,
    source_event_id: int | None = None,
) -> int:
    """Grant what moving from `change.old_plan_id` to the subscription's plan (already applied as
    the newest state) earns in the period [period_start, period_end) the change falls in, once per
    key. Returns the credits this call granted (0 for a replay, a downgrade, a plan without the
    policy, a subscription not live on both sides, or a budget used up)."""
    old_plan = session.get(Plan, change.old_plan_id) if change.old_plan_id else None
    new_plan = session.get(Plan, subscription.plan_id) if subscription.plan_id else None
    if old_plan is None or new_plan is None or old_plan.id == new_plan.id:
        return 0
    if change.old_status not in LIVE_STATUSES or subscription.status not in LIVE_STATUSES:
        return 0
    if subscription.duplicate_of_id is not None:  # a duplicate subscription grants nothing
        return 0
    if period_start is None or period_end is None or not changed_at < period_end:
        return 0
    if subscription.credits_period_start != period_start:
        _new_budget(subscription, period_start, base=old_plan.included_credits)
    credits = _earned(old_plan, new_plan, period_start, period_end, changed_at)
    peak = max(subscription.period_peak_credits, new_plan.included_credits)
    budget_left = peak - subscription.period_base_credits - subscription.period_upgrade_credits
    credits = min(credits, budget_left)
    if credits <= 0:
        return 0
    granted = ledger.grant_credits(
        session,
        outcome,
        account_id=subscription.account_id,
        credits=credits,
        kind=ledger.GRANT_UPGRADE,
        description=f"Upgrade from {old_plan.name} to {new_plan.name}",
        idempotency_key=idempotency_key,
        at=at,
        source_event_id=source_event_id,
    )
    if not granted:
        return 0
    subscription.period_peak_credits = peak
    subscription.period_upgrade_credits += credits
    return credits


def _new_budget(subscription: Subscription, period_start: datetime, *, base: int) -> None:
    subscription.credits_period_start = period_start
    subscription.period_base_credits = base
    subscription.period_peak_credits = base
    subscription.period_upgrade_credits = 0


def _earned(old_plan: Plan, new_plan: Plan, period_start: datetime, period_end: datetime, changed_at: datetime) -> int:
    """The new plan's policy applied to the difference, before the period's cap."""
    difference = new_plan.included_credits - old_plan.included_credits
    if new_plan.upgrade_credits != DIFFERENCE or difference <= 0:
        return 0
    if not new_plan.prorate_upgrades:
        return difference
    length = period_end - period_start
    left = min(period_end - max(changed_at, period_start), length)
    return (difference * left) // length if length.total_seconds() > 0 else 0
