"""An account as the people who ask about it see it: balance, subscription, recent ledger.
Served to the frontend (GET /api/v1/billing/account) and to ops (`billhook accounts show`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import entitlements, ledger
from shared.billing.disputes import disputes_of_account
from shared.billing.subscriptions import current_subscription
from shared.models import Account, Plan


def account_summary(
    session: Session, account: Account, *, now: datetime, ledger_limit: int = ledger.RECENT_ENTRIES
) -> dict:
    """Plain data (datetimes left as datetimes): each caller renders it for its audience.
    `entitled` and `grace_ends_at` say what the entitlement answer says at `now`, from the same
    subscription."""
    subscription = current_subscription(session, account.id)
    plan = session.get(Plan, subscription.plan_id) if subscription is not None and subscription.plan_id else None
    grace_end = entitlements.grace_ends_at(subscription, plan) if subscription is not None else None
    return {
        "id": account.id,
        "email": account.email,
        "name": account.name,
        "stripe_customer_id": account.stripe_customer_id,
        "balance": ledger.balance(session, account.id),
        "entitled": entitlements.is_entitled(subscription.status if subscription else None, grace_end, now),
        "subscription": None
        if subscription is None
        else {
            "provider": subscription.provider,
            "id": subscription.provider_subscription_id,
            "plan_id": subscription.plan_id,
            "status": subscription.status,
            "current_period_start": subscription.current_period_start,
            "current_period_end": subscription.current_period_end,
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "grace_ends_at": grace_end,
        },
        "disputes": [
            {
                "provider": d.provider,
                "id": d.provider_dispute_id,
                "state": d.state,
                "provider_status": d.provider_status,
                "amount_cents": d.amount_cents,
                "currency": d.currency,
                "credits_reversed": d.credits_reversed,
                "credits_restored": d.credits_restored,
                "opened_at": d.opened_at,
                "closed_at": d.closed_at,
            }
            for d in disputes_of_account(session, account.id)
        ],
        "ledger": [
            {
                "at": entry.created_at,
                "amount": entry.amount,
                "kind": entry.kind,
                "description": entry.description,
                "key": entry.idempotency_key,
            }
            for entry in ledger.recent_entries(session, account.id, ledger_limit)
        ],
    }
