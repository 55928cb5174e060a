"""Entitlements that end with time alone: a past_due subscription whose grace ran out.

Nothing arrives from a provider when a grace ends, so a beat task looks for such subscriptions
and records `subscription.lapsed` once per past_due spell (keyed on the spell's start), which
also moves the account's `billing_changed_at` for the main app's `changed_since` catch-up.
`record_lapse` is the one way to record such an end; manual payment periods call it too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.billing.accounts import lock_account
from shared.billing.entitlements import PAST_DUE, grace_ends_at
from shared.billing.subscriptions import subscription_data
from shared.db import for_update
from shared.models import Plan, Subscription
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


def record_lapse(session: Session, outcome: Outcome, *, account_id: str, key: str, data: dict, at: datetime) -> bool:
    """Write `subscription.lapsed` once per `key` (the caller holds the account lock)."""
    return outgoing.emit(
        session,
        outcome,
        account_id=account_id,
        type="subscription.lapsed",
        key=f"subscription.lapsed:{key}",
        data=data,
        at=at,
    )


_CANDIDATES = (
    select(Subscription.id, Subscription.account_id)
    .where(
        Subscription.status == PAST_DUE,
        Subscription.lapsed_at.is_(None),
        Subscription.past_due_since.is_not(None),
    )
    .order_by(Subscription.past_due_since)
)


def lapse_past_due(session_factory: sessionmaker[Session], *, now: datetime, limit: int = 500) -> Outcome:
    """Record the lapse of every past_due subscription whose grace has ended; one transaction
    each (account lock, then subscription lock, as the handlers take them). Returns what was
    queued, for the caller to enqueue."""
    with session_factory() as session:
        candidates = session.execute(_CANDIDATES.limit(limit)).all()
    done = Outcome()
    for subscription_id, account_id in candidates:
        outcome = Outcome()
        with session_factory.begin() as session:
            lock_account(session, account_id)
            subscription = session.scalars(for_update(select(Subscription).filter_by(id=subscription_id))).one()
            if subscription.status != PAST_DUE or subscription.lapsed_at is not None:
                continue
            plan = session.get(Plan, subscription.plan_id) if subscription.plan_id else None
            ends = grace_ends_at(subscription, plan)
            if ends is None or ends > now:
                continue
            subscription.lapsed_at = now
            record_lapse(
                session,
                outcome,
                account_id=account_id,
                key=f"{subscription.provider}:{subscription.provider_subscription_id}:{subscription.past_due_since.isoformat()}",
                data={"subscription": subscription_data(subscription), "grace_ended_at": ends.isoformat()},
                at=now,
            )
        done.touched(account_id)
        done.queued_deliveries(outcome.deliveries)
    return done
