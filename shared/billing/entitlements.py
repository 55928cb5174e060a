"""What an account is entitled to now: the state the main app gates its features on.

Read from the store in one query (the account, its current subscription, that subscription's
plan and the ledger balance), for `GET /api/v1/internal/accounts/{id}`, the `changed_since`
pages, and the snapshot every outgoing event carries.

Entitled: a live subscription (active, trialing), or a past_due one within its grace (the plan's
`past_due_grace_days`, 7 days when the catalog does not say), counted from when it fell past due.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from shared.models import Account, CreditLedgerEntry, Plan, Subscription

ENTITLED_STATUSES = ("active", "trialing")
PAST_DUE = "past_due"
# Statuses that count as the account's current subscription before any other.
CURRENT_STATUSES = ("active", "trialing", "past_due")
DEFAULT_GRACE_DAYS = 7

_other = aliased(Subscription)
_CURRENT_SUBSCRIPTION = (
    select(_other.id)
    .where(_other.account_id == Account.id)
    .order_by(case((_other.status.in_(CURRENT_STATUSES), 0), else_=1), _other.updated_at.desc(), _other.id.desc())
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
_STATE = (
    select(Account, Subscription, Plan, _BALANCE.label("balance"))
    .select_from(Account)
    .outerjoin(Subscription, Subscription.id == _CURRENT_SUBSCRIPTION)
    .outerjoin(Plan, Plan.id == Subscription.plan_id)
)


def grace_days(plan: Plan | None) -> int:
    days = getattr(plan, "past_due_grace_days", None)
    return DEFAULT_GRACE_DAYS if days is None else int(days)


def grace_ends_at(subscription: Subscription, plan: Plan | None) -> datetime | None:
    if subscription.status != PAST_DUE or subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=grace_days(plan))


def is_entitled(subscription: Subscription | None, plan: Plan | None, now: datetime) -> bool:
    if subscription is None:
        return False
    if subscription.status in ENTITLED_STATUSES:
        return True
    if subscription.status == PAST_DUE:
        ends = grace_ends_at(subscription, plan)
        return ends is None or now < ends
    return False


def render(account: Account, subscription: Subscription | None, plan: Plan | None, balance: int, now: datetime) -> dict:
    """Plain JSON-ready data; no names or addresses (the main app has them)."""
    grace_end = grace_ends_at(subscription, plan) if subscription is not None else None
    return {
        "account_id": account.id,
        "entitled": is_entitled(subscription, plan, now),
        "plan_id": subscription.plan_id if subscription is not None else None,
        "status": subscription.status if subscription is not None else None,
        "current_period_end": _iso(subscription.current_period_end) if subscription is not None else None,
        "cancel_at_period_end": bool(subscription.cancel_at_period_end) if subscription is not None else False,
        "grace_ends_at": _iso(grace_end),
        "balance": int(balance or 0),
        "features": (getattr(plan, "features", None) or {}) if plan is not None else {},
        "billing_changed_at": _iso(account.billing_changed_at),
    }


def entitlement(session: Session, account_id: str, *, now: datetime) -> dict | None:
    """The account's entitlement state, or None for an account billhook does not know."""
    row = session.execute(_STATE.where(Account.id == account_id)).one_or_none()
    if row is None:
        return None
    return render(row[0], row[1], row[2], row[3], now)


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
    return [render(r[0], r[1], r[2], r[3], now) for r in session.execute(stmt)]


def _iso(value: datetime | None) -> Any:
    return value.isoformat() if value is not None else None
