"""What an account is entitled to now: the state the main app gates its features on.

Read from the store in one query (the account, its current subscription, that subscription's
plan and the ledger balance), for `GET /api/v1/internal/accounts/{id}`, the `changed_since`
pages, and the snapshot every outgoing event carries.

Entitled: a live subscription (active, trialing), or a past_due one within its grace (the plan's
`past_due_grace_days`; 7 days for a subscription on no known plan), counted from when it fell
past due.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from shared.models import Account, CreditLedgerEntry, Plan, Subscription

ENTITLED_STATUSES = ("active", "trialing")
PAST_DUE = "past_due"
# Statuses that count as the account's current subscription before any other.
CURRENT_STATUSES = ("active", "trialing", "past_due")
DEFAULT_GRACE_DAYS = 7


def current_first(subscription: Any) -> tuple:
    """The order an account's current subscription is picked in, the one definition of "current"
    (this query and `subscriptions.current_subscription`): live first, the account's own before a
    flagged duplicate, then the latest changed."""
    return (
        case((subscription.status.in_(CURRENT_STATUSES), 0), else_=1),
        case((subscription.duplicate_of_id.is_(None), 0), else_=1),
        subscription.updated_at.desc(),
        subscription.id.desc(),
    )


_other = aliased(Subscription)
_CURRENT_SUBSCRIPTION = (
    select(_other.id)
    .where(_other.account_id == Account.id)
    .order_by(*current_first(_other))
    .limit(1)
    .correlate(Account)
    .scalar_subquery()
)
_BALANCE = (
    select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0))
    .where(CreditLedgerEntry.account_id == Account.id)
    .correlate(Account)
    .scalar_subquery()
)
_COLUMNS = [
    Account.id.label("account_id"),
    Account.billing_changed_at,
    Subscription.id.label("subscription_id"),
    Subscription.plan_id,
    Subscription.status,
    Subscription.current_period_end,
    Subscription.cancel_at_period_end,
    Subscription.past_due_since,
    _BALANCE.label("balance"),
    Plan.features,
    Plan.past_due_grace_days,
]
# Plain columns, not entities: building ORM objects was most of the answer's CPU.
_STATE = (
    select(*_COLUMNS)
    .select_from(Account)
    .outerjoin(Subscription, Subscription.id == _CURRENT_SUBSCRIPTION)
    .outerjoin(Plan, Plan.id == Subscription.plan_id)
)

_BY_ID = _STATE.where(Account.id == bindparam("account_id"))
_BY_IDS = _STATE.where(Account.id.in_(bindparam("account_ids", expanding=True)))


def grace_days(plan: Any) -> int:
    """The plan's past_due grace in days (a Plan or a `_STATE` row), or the default without one."""
    days = getattr(plan, "past_due_grace_days", None)
    return DEFAULT_GRACE_DAYS if days is None else int(days)


def grace_ends_at(subscription: Any, plan: Any) -> datetime | None:
    """When a past_due subscription's grace ends: from the spell's start, the plan's grace days."""
    if subscription.status != PAST_DUE or subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=grace_days(plan))


def is_entitled(status: str | None, grace_end: datetime | None, now: datetime) -> bool:
    if status in ENTITLED_STATUSES:
        return True
    if status == PAST_DUE:
        return grace_end is None or now < grace_end
    return False


def render(row: Any, now: datetime) -> dict:
    """One `_STATE` row as plain JSON-ready data; no names or addresses (the main app has them)."""
    has_subscription = row.subscription_id is not None
    grace_end = grace_ends_at(row, row) if has_subscription else None
    return {
        "account_id": row.account_id,
        "entitled": is_entitled(row.status, grace_end, now),
        "plan_id": row.plan_id,
        "status": row.status,
        "current_period_end": _iso(row.current_period_end),
        "cancel_at_period_end": bool(row.cancel_at_period_end),
        "grace_ends_at": _iso(grace_end),
        "balance": int(row.balance or 0),
        "features": row.features or {},
        "billing_changed_at": _iso(row.billing_changed_at),
    }


def entitlement(session: Session, account_id: str, *, now: datetime) -> dict | None:
    """The account's entitlement state, or None for an account billhook does not know."""
    row = session.execute(_BY_ID, {"account_id": account_id}).one_or_none()
    return None if row is None else render(row, now)


def entitlements(session: Session, nows: dict[str, datetime]) -> dict[str, dict]:
    """`entitlement` for several accounts in one query: each account of `nows` (by id, the time
    its state is told for) that billhook knows, by id."""
    if len(nows) == 1:
        ((account_id, now),) = nows.items()
        state = entitlement(session, account_id, now=now)
        return {} if state is None else {account_id: state}
    rows = session.execute(_BY_IDS, {"account_ids": list(nows)})
    return {row.account_id: render(row, nows[row.account_id]) for row in rows}


def changed_since(
    session: Session, since: datetime, *, after: tuple[datetime, str] | None, limit: int, now: datetime
) -> list[dict]:
    """Accounts whose billing state changed at or after `since`, oldest change first, `limit` of
    them after the cursor `after` = (billing_changed_at, id) of the previous page's last one."""
    stmt = _STATE.where(Account.billing_changed_at >= since)
    if after is not None:
        changed_at, account_id = after
        stmt = stmt.where(
            or_(
                Account.billing_changed_at > changed_at,
                and_(Account.billing_changed_at == changed_at, Account.id > account_id),
            )
        )
    stmt = stmt.order_by(Account.billing_changed_at, Account.id).limit(limit)
    return [render(row, now) for row in session.execute(stmt)]


def _iso(value: datetime | None) -> Any:
    return value.isoformat() if value is not None else None
