"""Two live subscriptions for one account: the later one (by the provider's creation time) is a
duplicate. It grants nothing, what it granted before it could be known is taken back once, and
ops see it until it is canceled.

Its events and the earlier subscription's may arrive in any order. Whichever event comes last
finds both live with their creation times known and flags the later; every event of either
subscription looks again, so the outcome does not depend on which arrived first. A duplicate
stays one: if the earlier subscription ends, the operator still decides about the later.

The caller holds the account's lock (every subscription event takes it first), which serialises
this decision per account.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.billing import ledger, notifications
from shared.billing.subscriptions import LIVE_STATUSES, TERMINAL_STATUSES, subscription_data
from shared.db import for_update
from shared.models import Account, CreditLedgerEntry, Subscription
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


def settle(
    session: Session,
    outcome: Outcome,
    subscription: Subscription,
    *,
    created_at: datetime | None,
    at: datetime,
    source_event_id: int | None = None,
) -> bool:
    """Record when the provider created `subscription` (it never changes; an event that does not
    say passes None), then flag the account's later live subscriptions as duplicates of its
    earliest, taking back what they granted. True when `subscription` is a duplicate."""
    if created_at is not None and subscription.provider_created_at is None:
        subscription.provider_created_at = created_at
    if len(session.scalars(_LIVE_WITH_KNOWN_CREATION, {"account_id": subscription.account_id}).all()) < 2:
        return subscription.duplicate_of_id is not None  # the common case, read without loading rows
    live = _live_with_known_creation(session, subscription.account_id)
    if len(live) > 1:
        earliest = live[0]
        for later in live[1:]:
            if later.duplicate_of_id is None:
                later.duplicate_of_id = earliest.id
                _take_back_grants(session, outcome, later, at=at, source_event_id=source_event_id)
                _tell_main_app(session, outcome, later, earliest, at=at)
    return subscription.duplicate_of_id is not None


# Whether the account has two live subscriptions whose creation time is known (ids, two at most).
_LIVE_WITH_KNOWN_CREATION = (
    select(Subscription.id)
    .where(
        Subscription.account_id == bindparam("account_id"),
        Subscription.status.in_(LIVE_STATUSES),
        Subscription.provider_created_at.is_not(None),
    )
    .limit(2)
)


def _live_with_known_creation(session: Session, account_id: str) -> list[Subscription]:
    """The account's live subscriptions whose creation time is known, earliest first (of two
    created the same second, the smaller provider id is the earlier), locked after the account."""
    stmt = (
        select(Subscription)
        .where(
            Subscription.account_id == account_id,
            Subscription.status.in_(LIVE_STATUSES),
            Subscription.provider_created_at.is_not(None),
        )
        .order_by(Subscription.provider_created_at, Subscription.provider_subscription_id)
    )
    return list(session.scalars(for_update(stmt)))


def grant_key_prefix(subscription: Subscription) -> str:
    """Every grant of a subscription's credits is keyed `<provider>:subscription:<id>:...` (the
    Stripe and PayPal handlers' period keys)."""
    return f"{subscription.provider}:subscription:{subscription.provider_subscription_id}:"


def _grants_of(session: Session, subscription: Subscription) -> list[CreditLedgerEntry]:
    stmt = (
        select(CreditLedgerEntry)
        .where(
            CreditLedgerEntry.account_id == subscription.account_id,
            CreditLedgerEntry.kind == ledger.GRANT_SUBSCRIPTION,
            CreditLedgerEntry.idempotency_key.startswith(grant_key_prefix(subscription), autoescape=True),
        )
        .order_by(CreditLedgerEntry.id)
    )
    return list(session.scalars(stmt))


def _take_back_grants(
    session: Session, outcome: Outcome, duplicate: Subscription, *, at: datetime, source_event_id: int | None
) -> None:
    """One reversal per grant, keyed on the grant; what a refund or dispute of the grant's payment
    already took back is not taken twice (and a later refund finds this reversal). Like a refund's,
    a reversal that takes the balance below the account's threshold sends low_credits once."""
    for grant in _grants_of(session, duplicate):
        owed = grant.amount
        if grant.payment_id is not None:
            owed -= ledger.reversed_for_payment(session, grant.payment_id)
        if owed <= 0:
            continue
        key = ledger.duplicate_reversal_key(grant.idempotency_key)
        before = ledger.balance(session, grant.account_id)
        added = ledger.add_entry(
            session,
            outcome,
            account_id=grant.account_id,
            amount=-owed,
            kind=ledger.DUPLICATE_REVERSAL,
            description=f"Duplicate subscription {duplicate.provider_subscription_id}: credits taken back",
            idempotency_key=key,
            at=at,
            payment_id=grant.payment_id,
            source_event_id=source_event_id,
        )
        if added:
            account = session.get(Account, grant.account_id)  # locked by the caller
            notifications.low_credits_if_crossed(
                session, outcome, account, before=before, after=before - owed, cause_key=key, at=at
            )


def _tell_main_app(
    session: Session, outcome: Outcome, duplicate: Subscription, earlier: Subscription, *, at: datetime
) -> None:
    """Once per duplicate: its own events may have told the main app of it as the account's
    subscription; this event's snapshot (written after the flag) names the earlier one."""
    outgoing.emit(
        session,
        outcome,
        account_id=duplicate.account_id,
        type="subscription.updated",
        key=f"subscription.updated:{duplicate.provider}:{duplicate.provider_subscription_id}:duplicate",
        data={
            "subscription": subscription_data(duplicate),
            "previous": {"duplicate_of": None},
            "duplicate_of": earlier.provider_subscription_id,
        },
        at=at,
    )


def open_duplicates(session: Session, *, limit: int = 100) -> list[tuple[Subscription, Subscription | None]]:
    """Flagged duplicates not ended yet (the ones an operator has to cancel), oldest first, each
    with the subscription it duplicates."""
    stmt = (
        select(Subscription)
        .where(Subscription.duplicate_of_id.is_not(None), Subscription.status.not_in(TERMINAL_STATUSES))
        .order_by(Subscription.provider_created_at, Subscription.id)
        .limit(limit)
    )
    return [(row, session.get(Subscription, row.duplicate_of_id)) for row in session.scalars(stmt)]


def duplicates_of_account(session: Session, account_id: str) -> list[dict]:
    """Every flagged duplicate of the account, ended or not, newest first, as plain data."""
    stmt = (
        select(Subscription)
        .where(Subscription.account_id == account_id, Subscription.duplicate_of_id.is_not(None))
        .order_by(Subscription.id.desc())
    )
    return [_data(row, session.get(Subscription, row.duplicate_of_id)) for row in session.scalars(stmt)]


def _data(duplicate: Subscription, earlier: Subscription | None) -> dict:
    return {
        "provider": duplicate.provider,
        "id": duplicate.provider_subscription_id,
        "plan_id": duplicate.plan_id,
        "status": duplicate.status,
        "open": duplicate.status not in TERMINAL_STATUSES,
        "created_at": duplicate.provider_created_at,
        "duplicate_of": earlier.provider_subscription_id if earlier is not None else None,
    }
