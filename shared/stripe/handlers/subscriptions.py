"""Subscription objects: status, plan, periods and cancellation, applied in event order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import catalog, duplicates, subscriptions, upgrades
from shared.billing.subscriptions import SubscriptionChange, SubscriptionStatus
from shared.inbox.registry import handles
from shared.models import WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import (
    PROVIDER,
    data_object,
    event_at,
    expandable_id,
    lock_subscription_for,
    metadata,
    missing,
    ts,
)


@handles(PROVIDER, "customer.subscription.created", "customer.subscription.updated")
def subscription_updated(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """The subscription's newest state; a plan change within the running period grants its
    upgrade credits (shared/billing/upgrades.py), a stale event nothing."""
    stripe_subscription = data_object(event)
    status = _status(event, stripe_subscription)
    item = _item(event, stripe_subscription)
    subscription = lock_subscription_for(session, outcome, stripe_subscription["id"], stripe_subscription)
    plan = catalog.plan_by_stripe_price(session, expandable_id((item.get("price") or {}).get("id")))
    change = upgrades.before(subscription)
    applied = subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=status,
            plan_id=plan.id if plan else metadata(stripe_subscription).get("plan_id"),
            current_period_start=ts(item.get("current_period_start")),
            current_period_end=ts(item.get("current_period_end")),
            cancel_at_period_end=bool(stripe_subscription.get("cancel_at_period_end")),
            canceled_at=ts(stripe_subscription.get("canceled_at")),
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    _settle_duplicates(session, outcome, event, subscription, stripe_subscription, now)
    if applied and not change.began_new_period(subscription):
        upgrades.grant_upgrade_credits(
            session,
            outcome,
            subscription,
            change,
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
            changed_at=event_at(event),
            idempotency_key=upgrades.upgrade_key(PROVIDER, subscription.provider_subscription_id, event.event_id),
            at=now,
            source_event_id=event.id,
        )


@handles(PROVIDER, "customer.subscription.deleted")
def subscription_deleted(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    stripe_subscription = data_object(event)
    subscription = lock_subscription_for(session, outcome, stripe_subscription["id"], stripe_subscription)
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=subscriptions.CANCELED,
            canceled_at=ts(stripe_subscription.get("canceled_at") or stripe_subscription.get("ended_at"))
            or event_at(event),
            cancel_at_period_end=False,
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    _settle_duplicates(session, outcome, event, subscription, stripe_subscription, now)


def _settle_duplicates(
    session: Session, outcome: Outcome, event: WebhookEvent, subscription, stripe_subscription: dict, now: datetime
) -> None:
    """Stripe's `created` orders two live subscriptions of one account: the later is the duplicate."""
    duplicates.settle(
        session,
        outcome,
        subscription,
        created_at=ts(stripe_subscription.get("created")),
        at=now,
        source_event_id=event.id,
    )


def _status(event: WebhookEvent, stripe_subscription: dict) -> SubscriptionStatus:
    try:
        return SubscriptionStatus(stripe_subscription.get("status"))
    except ValueError as exc:
        raise missing(event, stripe_subscription, "status (one of Stripe's subscription statuses)") from exc


def _item(event: WebhookEvent, stripe_subscription: dict) -> dict:
    """The subscription's item: its price says the plan, its period the billing period."""
    items = (stripe_subscription.get("items") or {}).get("data") or []
    if not items:
        raise missing(event, stripe_subscription, "items.data[]")
    item = items[0]
    for field in ("current_period_start", "current_period_end"):
        if not item.get(field):
            raise missing(event, stripe_subscription, f"items.data[].{field}")
    return item
