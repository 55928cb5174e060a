"""PayPal Subscriptions v1 handlers: activation, sales (one period's credits each), and status
changes applied in event order (the subscription's high-water mark)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.billing import duplicates, notifications, payments, subscriptions, upgrades
from shared.billing.accounts import lock_account
from shared.billing.manual_payments import add_interval
from shared.billing.subscriptions import SubscriptionChange
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import Plan, Subscription, WebhookEvent
from shared.outcome import Outcome
from shared.paypal.amounts import parse_amount
from shared.paypal.client import PROVIDER
from shared.paypal.handlers.common import (
    event_at,
    initial_key,
    lock_from_resource,
    parse_time,
    plan_by_id,
    resource_of,
)

PAUSED = "paused"
# A sale this close to the subscription's start pays its first period (granted at activation);
# later sales are renewals. Half a billing interval tolerates PayPal's payment retries.
_HALF_INTERVAL = {
    "day": timedelta(hours=12),
    "week": timedelta(days=3, hours=12),
    "month": timedelta(days=14),
    "year": timedelta(days=182),
}


@handles(PROVIDER, "BILLING.SUBSCRIPTION.ACTIVATED")
def subscription_activated(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Active for the account in custom_id, on the plan PayPal names; the first period's credits
    once (the first sale shares the key)."""
    resource = resource_of(event)
    subscription, plan = lock_from_resource(session, outcome, resource)
    billing = resource.get("billing_info") or {}
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=subscriptions.ACTIVE,
            plan_id=plan.id if plan else None,
            # For PayPal subscriptions the period start is the subscription's start: the anchor
            # sales are measured from (see _sale_key).
            current_period_start=parse_time(resource.get("start_time")) or event_at(event),
            current_period_end=parse_time(billing.get("next_billing_time")),
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    duplicate = _settle_duplicates(session, outcome, event, subscription, resource, now)
    plan = plan or plan_by_id(session, subscription.plan_id)
    if plan is None:
        raise PermanentError(f"PayPal subscription {resource['id']} is on no known plan")
    subscriptions.grant_period_credits(
        session,
        outcome,
        subscription,
        plan,
        idempotency_key=initial_key(resource["id"]),
        at=now,
        source_event_id=event.id,
    )
    # Not when a newer cancellation was applied first, nor for a duplicate (it grants nothing).
    if subscription.status == subscriptions.ACTIVE and not duplicate:
        notifications.subscription_activated(session, outcome, subscription, plan)


def _settle_duplicates(
    session: Session, outcome: Outcome, event: WebhookEvent, subscription: Subscription, resource: dict, now: datetime
) -> bool:
    """PayPal's `create_time` orders two live subscriptions of one account: the later is the duplicate."""
    return duplicates.settle(
        session,
        outcome,
        subscription,
        created_at=parse_time(resource.get("create_time")),
        at=now,
        source_event_id=event.id,
    )


@handles(PROVIDER, "PAYMENT.SALE.COMPLETED")
def sale_completed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """A subscription payment: a payment row, and the period's credits once. Sales of other kinds
    (no billing_agreement_id) are not billhook's."""
    sale = resource_of(event)
    subscription_id = sale.get("billing_agreement_id")
    if not subscription_id:
        return
    existing = subscriptions.find_subscription(session, PROVIDER, subscription_id)
    if existing is None or existing.current_period_start is None:
        raise RetryLater(f"PayPal subscription {subscription_id} not activated yet")
    lock_account(session, existing.account_id)
    subscription = subscriptions.lock_or_create_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=existing.account_id
    )
    outcome.touched(subscription.account_id)
    plan = plan_by_id(session, subscription.plan_id)
    if plan is None:
        raise RetryLater(f"plan of PayPal subscription {subscription_id} not known yet")
    duplicate = duplicates.settle(session, outcome, subscription, created_at=None, at=now, source_event_id=event.id)
    amount = sale.get("amount") or {}
    currency = amount.get("currency") or plan.currency
    payment, _ = payments.record_payment(
        session,
        outcome,
        payments.PaymentRecord(
            account_id=subscription.account_id,
            provider=PROVIDER,
            provider_payment_id=sale["id"],
            provider_charge_ref=sale["id"],
            kind="subscription",
            amount_cents=parse_amount(amount["total"], currency) if amount.get("total") else plan.price_cents,
            currency=currency,
            plan_id=plan.id,
            subscription_id=subscription.id,
            provider_invoice_id=sale["id"],
            line_items=[{"description": f"{plan.name} plan", "amount_cents": plan.price_cents, "quantity": 1}],
            credits_granted=0 if duplicate else plan.included_credits,
        ),
        at=now,
    )
    if subscription.status not in subscriptions.TERMINAL_STATUSES:
        # A paid sale says the subscription stood paid at the sale's time: applied as that
        # time's state, so a past_due cycle paid after all is active again, and a failure of an
        # earlier cycle delivered after the sale changes nothing. A canceled one stays canceled.
        subscriptions.apply_subscription_state(
            session,
            outcome,
            subscription,
            SubscriptionChange(status=subscriptions.ACTIVE),
            event_at=event_at(event),
            event_id=event.event_id,
            now=now,
        )
    key = _sale_key(subscription, plan, sale, subscription_id, event_at(event))
    subscriptions.grant_period_credits(
        session,
        outcome,
        subscription,
        plan,
        idempotency_key=key,
        at=now,
        payment_id=payment.id,
        source_event_id=event.id,
    )
    if key == initial_key(subscription_id):
        # The first period's receipt (its activation email came with BILLING.SUBSCRIPTION.ACTIVATED).
        notifications.payment_confirmation(
            session,
            outcome,
            payment,
            description=f"{plan.name} plan",
            credits=None if duplicate else plan.included_credits,
        )
    else:
        # A sale names no period end; the email leaves the next renewal date out.
        notifications.subscription_renewal(session, outcome, subscription, plan, payment, period_end=None)


def _sale_key(subscription: Subscription, plan: Plan, sale: dict, subscription_id: str, received_at: datetime) -> str:
    sold_at = parse_time(sale.get("create_time")) or received_at
    half = _HALF_INTERVAL.get(plan.interval, _HALF_INTERVAL["month"])
    if sold_at < subscription.current_period_start + half:
        return initial_key(subscription_id)
    return f"paypal:subscription:{subscription_id}:sale:{sale['id']}"


_STATUS_EVENTS = {
    "BILLING.SUBSCRIPTION.CANCELLED": subscriptions.CANCELED,
    "BILLING.SUBSCRIPTION.EXPIRED": subscriptions.CANCELED,
    "BILLING.SUBSCRIPTION.SUSPENDED": PAUSED,
    "BILLING.SUBSCRIPTION.RE-ACTIVATED": subscriptions.ACTIVE,
}
# A subscription resource's status in billhook's words. PayPal keeps a subscription ACTIVE while
# its payments fail (until it suspends it): `billing_info.failed_payments_count` says past due.
_RESOURCE_STATUS = {
    "ACTIVE": subscriptions.ACTIVE,
    "SUSPENDED": PAUSED,
    "CANCELLED": subscriptions.CANCELED,
    "EXPIRED": subscriptions.CANCELED,
}


@handles(PROVIDER, *_STATUS_EVENTS)
def subscription_status_changed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Cancelled/expired/suspended/re-activated, applied only if no newer event was (out-of-order
    safe). A re-activation grants nothing: the sale that follows pays its period."""
    resource = resource_of(event)
    subscription, plan = lock_from_resource(session, outcome, resource)
    status = _STATUS_EVENTS[event.type]
    if status == subscriptions.ACTIVE and _failed_payments(resource):
        status = subscriptions.PAST_DUE
    changed_at = parse_time(resource.get("status_update_time")) or event_at(event)
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=status,
            plan_id=plan.id if plan else None,
            canceled_at=changed_at if status == subscriptions.CANCELED else None,
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    _settle_duplicates(session, outcome, event, subscription, resource, now)


@handles(PROVIDER, "BILLING.SUBSCRIPTION.UPDATED")
def subscription_updated(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """The subscription as PayPal holds it now (a plan revision, a new billing date, a status):
    applied as the newest state unless a newer event was. Statuses before activation
    (APPROVAL_PENDING, APPROVED) say nothing billhook acts on. A revised plan grants its upgrade
    credits for the billing cycle running (shared/billing/upgrades.py)."""
    resource = resource_of(event)
    subscription, plan = lock_from_resource(session, outcome, resource)
    status = _resource_status(resource)
    billing = resource.get("billing_info") or {}
    change = upgrades.before(subscription)
    applied = subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=status,
            plan_id=plan.id if plan else None,
            current_period_end=parse_time(billing.get("next_billing_time")),
            canceled_at=(parse_time(resource.get("status_update_time")) or event_at(event))
            if status == subscriptions.CANCELED
            else None,
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    _settle_duplicates(session, outcome, event, subscription, resource, now)
    if applied:
        _grant_upgrade_credits(session, outcome, subscription, change, event, now)


def _grant_upgrade_credits(
    session: Session,
    outcome: Outcome,
    subscription: Subscription,
    change: upgrades.PlanChange,
    event: WebhookEvent,
    now: datetime,
) -> None:
    """billhook's period start for a PayPal subscription is its start (the anchor of its sales), so
    the running cycle is the interval of the plan being left that ends at the next billing time."""
    old_plan = plan_by_id(session, change.old_plan_id)
    period_end = subscription.current_period_end
    if old_plan is None or period_end is None:
        return
    upgrades.grant_upgrade_credits(
        session,
        outcome,
        subscription,
        change,
        period_start=add_interval(period_end, old_plan.interval, -1),
        period_end=period_end,
        changed_at=event_at(event),
        idempotency_key=upgrades.upgrade_key(PROVIDER, subscription.provider_subscription_id, event.event_id),
        at=now,
        source_event_id=event.id,
    )


@handles(PROVIDER, "BILLING.SUBSCRIPTION.PAYMENT.FAILED")
def subscription_payment_failed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Past due (unless a newer event said otherwise), and one payment_failed email per failed
    billing cycle: PayPal retries a failed cycle, and each retry's failure is another event."""
    resource = resource_of(event)
    subscription, plan = lock_from_resource(session, outcome, resource)
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(status=subscriptions.PAST_DUE, plan_id=plan.id if plan else None),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    _settle_duplicates(session, outcome, event, subscription, resource, now)
    billing = resource.get("billing_info") or {}
    failed = billing.get("last_failed_payment") or {}
    amount = failed.get("amount") or billing.get("outstanding_balance") or {}
    plan = plan or plan_by_id(session, subscription.plan_id)
    currency = amount.get("currency_code") or (plan.currency if plan else "usd")
    owed = parse_amount(amount["value"], currency) if amount.get("value") else (plan.price_cents if plan else 0)
    notifications.payment_failed(
        session,
        outcome,
        account_id=subscription.account_id,
        provider=PROVIDER,
        reference=f"{resource['id']}:cycle:{_failed_cycle(resource, event)}",
        amount_cents=owed,
        currency=currency,
        description=f"{plan.name} plan" if plan else "Your subscription",
        reason=_FAILURE_REASONS.get(failed.get("reason_code")),
        at=now,
    )


_FAILURE_REASONS = {
    "PAYMENT_DENIED": "The payment was denied.",
    "INSUFFICIENT_FUNDS": "The payment method has insufficient funds.",
}


def _failed_payments(resource: dict) -> int:
    count = (resource.get("billing_info") or {}).get("failed_payments_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _resource_status(resource: dict) -> str | None:
    status = _RESOURCE_STATUS.get(resource.get("status"))
    if status == subscriptions.ACTIVE and _failed_payments(resource):
        return subscriptions.PAST_DUE
    return status


def _failed_cycle(resource: dict, event: WebhookEvent) -> str:
    """Which billing cycle failed: the one after the cycles completed so far (the count does not
    move while PayPal retries it). Without cycle executions, the due date it failed on."""
    executions = (resource.get("billing_info") or {}).get("cycle_executions") or []
    completed = [e.get("cycles_completed") for e in executions if isinstance(e, dict)]
    if completed and all(isinstance(c, int) for c in completed):
        return str(sum(completed) + 1)
    billing = resource.get("billing_info") or {}
    due = parse_time(billing.get("next_billing_time")) or event_at(event)
    return due.date().isoformat()
