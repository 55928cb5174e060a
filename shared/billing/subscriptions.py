"""Subscription state, applied in event order whatever order the events arrive in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.billing import ledger
from shared.billing.entitlements import current_first
from shared.db import for_update, held_in_transaction, lock_or_insert
from shared.models import Account, Plan, Subscription
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


class SubscriptionStatus(StrEnum):
    """Stripe's subscription statuses (PayPal's are mapped onto them)."""

    INCOMPLETE = "incomplete"  # created, first invoice not paid yet (or its payment failed)
    INCOMPLETE_EXPIRED = "incomplete_expired"  # the first invoice was never paid: ended
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal's payment failed; Stripe is still retrying it
    UNPAID = "unpaid"  # the retries ran out and the subscription was left open unpaid
    PAUSED = "paused"  # a trial ended without a payment method, or paused collection
    CANCELED = "canceled"


ACTIVE = SubscriptionStatus.ACTIVE
PAST_DUE = SubscriptionStatus.PAST_DUE
CANCELED = SubscriptionStatus.CANCELED
INCOMPLETE = SubscriptionStatus.INCOMPLETE
# Statuses in which the subscriber has the plan's service. A subscription that never paid its
# first invoice (incomplete, incomplete_expired) or stopped paying for good (unpaid, paused) has not.
LIVE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)
TERMINAL_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)


@dataclass(frozen=True)
class SubscriptionChange:
    """What one event says about a subscription; None means 'this event does not say'."""

    status: str | None = None
    plan_id: str | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool | None = None
    canceled_at: datetime | None = None


def lock_or_create_subscription(
    session: Session, *, provider: str, provider_subscription_id: str, account_id: str
) -> Subscription:
    """The subscription row, created if new, locked for this transaction (SELECT ... FOR UPDATE).

    The lock serialises concurrent events for one subscription, so none of their updates is lost.
    A known subscription costs one statement (see `lock_or_insert`).
    """
    return lock_or_insert(
        session,
        (Subscription, provider, provider_subscription_id),
        _LOCK,
        {"provider": provider, "provider_subscription_id": provider_subscription_id},
        Subscription,
        {
            "provider": provider,
            "provider_subscription_id": provider_subscription_id,
            "account_id": account_id,
            "status": SubscriptionStatus.INCOMPLETE,
        },
        ["provider", "provider_subscription_id"],
    )


_FIND = select(Subscription).where(
    Subscription.provider == bindparam("provider"),
    Subscription.provider_subscription_id == bindparam("provider_subscription_id"),
)
_LOCK = for_update(_FIND)
_ACCOUNT_OF = _FIND.with_only_columns(Subscription.account_id)
# The subscriber's account row, locked, found through the subscription in the same statement (the
# subscription's row is only read here; its lock comes next, in lock order).
_LOCK_SUBSCRIBER = for_update(select(Account).where(Account.id == _ACCOUNT_OF.scalar_subquery()))


def lock_subscriber(session: Session, provider: str, provider_subscription_id: str) -> Account | None:
    """The account a known subscription belongs to, locked for this transaction as
    `ensure_account` would lock it (one statement); None for a subscription not seen yet."""
    params = {"provider": provider, "provider_subscription_id": provider_subscription_id}
    account = session.scalars(_LOCK_SUBSCRIBER, params).one_or_none()
    if account is not None:
        held_in_transaction(session)[(Account, account.id)] = account
    return account


def find_subscription(session: Session, provider: str, provider_subscription_id: str) -> Subscription | None:
    params = {"provider": provider, "provider_subscription_id": provider_subscription_id}
    return session.scalars(_FIND, params).one_or_none()


def apply_subscription_state(
    session: Session,
    outcome: Outcome,
    subscription: Subscription,
    change: SubscriptionChange,
    *,
    event_at: datetime,
    event_id: str,
    now: datetime,
) -> bool:
    """Apply what an event says, unless a newer event was already applied (the high-water mark).

    A stale event may still fill in a plan or period nothing newer has told us yet. Events from
    the same second cannot be ordered; of those, a terminal status wins. A change of status, plan
    or cancel_at_period_end writes its outgoing event (keyed on the subscription and `event_id`).
    Returns True when the change was applied as the newest state.
    """
    mark = subscription.last_event_at
    stale = mark is not None and (
        event_at < mark
        or (
            event_at == mark
            and subscription.status in TERMINAL_STATUSES
            and change.status not in (None, *TERMINAL_STATUSES)
        )
    )
    if stale:
        _fill_missing(subscription, change)
        return False
    before = {name: getattr(subscription, name) for name in _TOLD}
    for name in (
        "status",
        "plan_id",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "canceled_at",
    ):
        value = getattr(change, name)
        if value is not None:
            setattr(subscription, name, value)
    subscription.last_event_at = event_at
    subscription.last_event_id = event_id
    _track_past_due(subscription, before["status"], event_at)
    tell_main_app(session, outcome, subscription, before, event_id=event_id, at=now)
    return True


# What the main app is told about when it changes.
_TOLD = ("status", "plan_id", "cancel_at_period_end")


def _track_past_due(subscription: Subscription, old_status: str | None, event_at: datetime) -> None:
    """The past_due spell's start (the entitlement grace runs from it); a new spell may lapse again."""
    if subscription.status == PAST_DUE and old_status != PAST_DUE:
        subscription.past_due_since = event_at
        subscription.lapsed_at = None
    elif subscription.status != PAST_DUE:
        subscription.past_due_since = None
        subscription.lapsed_at = None


def _event_type(old_status: str | None, new_status: str) -> str:
    if new_status in ("active", "trialing") and old_status not in LIVE_STATUSES:
        return "subscription.activated"
    if new_status == PAST_DUE and old_status != PAST_DUE:
        return "subscription.past_due"
    if new_status in TERMINAL_STATUSES and old_status not in TERMINAL_STATUSES:
        return "subscription.canceled"
    return "subscription.updated"


def told_state(subscription: Subscription) -> dict:
    """What the main app is told about when it changes (pass it to `tell_main_app` after)."""
    return {name: getattr(subscription, name) for name in _TOLD}


def tell_main_app(
    session: Session, outcome: Outcome, subscription: Subscription, before: dict, *, event_id: str, at: datetime
) -> None:
    """The subscription's outgoing event for what changed since `before` (`told_state`), once per
    `event_id`; nothing when nothing the main app is told about changed."""
    changed = {name: before[name] for name in _TOLD if getattr(subscription, name) != before[name]}
    if not changed:
        return
    type_ = _event_type(before["status"], subscription.status)
    outgoing.emit(
        session,
        outcome,
        account_id=subscription.account_id,
        type=type_,
        key=f"{type_}:{subscription.provider}:{subscription.provider_subscription_id}:{event_id}",
        data={"subscription": subscription_data(subscription), "previous": changed},
        at=at,
    )


def subscription_data(subscription: Subscription) -> dict:
    return {
        "provider": subscription.provider,
        "id": subscription.provider_subscription_id,
        "plan_id": subscription.plan_id,
        "status": subscription.status,
        "cancel_at_period_end": bool(subscription.cancel_at_period_end),
        "current_period_end": subscription.current_period_end.isoformat() if subscription.current_period_end else None,
    }


def _fill_missing(subscription: Subscription, change: SubscriptionChange) -> None:
    if subscription.plan_id is None and change.plan_id is not None:
        subscription.plan_id = change.plan_id
    if subscription.current_period_start is None and change.current_period_start is not None:
        subscription.current_period_start = change.current_period_start
        subscription.current_period_end = change.current_period_end


def current_subscription(session: Session, account_id: str) -> Subscription | None:
    """The account's live subscription if any, else its most recent one: the one its entitlement
    is read from (`entitlements.current_first`)."""
    stmt = select(Subscription).filter_by(account_id=account_id).order_by(*current_first(Subscription)).limit(1)
    return session.scalars(stmt).first()


def grant_period_credits(
    session: Session,
    outcome: Outcome,
    subscription: Subscription,
    plan: Plan,
    *,
    idempotency_key: str,
    at: datetime,
    payment_id: int | None = None,
    source_event_id: int | None = None,
) -> bool:
    """Grant a billing period's plan credits once per key. Two events may name the same period
    (a checkout completion and its first invoice): whichever comes first grants; when the other
    carries the payment, the existing entry is linked to it so a refund of that payment finds it.
    A duplicate subscription (shared/billing/duplicates.py) grants nothing; a grant of it made
    before it was known is linked the same way, with its reversal.
    Returns True when this call granted."""
    granted = subscription.duplicate_of_id is None and ledger.grant_credits(
        session,
        outcome,
        account_id=subscription.account_id,
        credits=plan.included_credits,
        kind=ledger.GRANT_SUBSCRIPTION,
        description=f"{plan.name} plan credits",
        idempotency_key=idempotency_key,
        at=at,
        payment_id=payment_id,
        source_event_id=source_event_id,
    )
    if not granted and payment_id is not None:
        for key in (idempotency_key, ledger.duplicate_reversal_key(idempotency_key)):
            entry = ledger.entry_by_key(session, key)
            if entry is not None and entry.payment_id is None:
                entry.payment_id = payment_id
    return granted
