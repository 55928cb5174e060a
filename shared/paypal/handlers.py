"""PayPal event handlers, on the documented webhook shapes: Orders v2 (`resource` is an order or a
capture/refund), Subscriptions v1 (`resource` is a subscription, or a sale for its payments).

Accounts and items come from billhook's custom_id (shared.paypal.orders). Event order is the
event's `create_time` (the inbox's `event_created_at`): the subscription high-water mark.
Handlers never call PayPal: capturing an approved order is the `billhook.paypal_capture_order`
task's job (shared.paypal.orders.capture_approved_order).

Emails go through shared.billing.notifications, as for Stripe: queued in the handler's transaction under
provider-neutral keys (one receipt per order or sale, one activation per subscription, one refund
email per refunded level), published by the worker after the commit. Lock order, as everywhere:
account, then subscription, then payment (shared.billing.accounts.ensure_account).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.billing import notifications, payments, refunds, subscriptions
from shared.billing.accounts import ensure_account, lock_account
from shared.billing.subscriptions import SubscriptionChange
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import Account, Payment, Plan, Subscription, WebhookEvent
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from shared.paypal.client import PROVIDER, parse_amount

PAUSED = "paused"
# A sale this close to the subscription's start pays its first period (granted at activation);
# later sales are renewals. Half a billing interval tolerates PayPal's payment retries.
_HALF_INTERVAL = {
    "day": timedelta(hours=12),
    "week": timedelta(days=3, hours=12),
    "month": timedelta(days=14),
    "year": timedelta(days=182),
}


def _resource(event: WebhookEvent) -> dict:
    resource = (event.payload or {}).get("resource")
    if not isinstance(resource, dict):
        raise PermanentError("event has no resource")
    return resource


def _event_at(event: WebhookEvent) -> datetime:
    return event.event_created_at or event.received_at


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- orders -----------------------------------------------------------------------------------


@handles(PROVIDER, "CHECKOUT.ORDER.APPROVED")
def order_approved(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Record whose order this is. The handled event is the intent to capture: the capture task
    captures it if the browser's return has not (the payment row tells) — see
    paypal_orders.orders_awaiting_capture."""
    order = _resource(event)
    if not order.get("id"):
        raise PermanentError("approved order has no id")
    unit = (order.get("purchase_units") or [{}])[0] or {}
    account_id, _ = paypal_orders.parse_custom_id(unit.get("custom_id"))
    _remember_email(ensure_account(session, account_id), (order.get("payer") or {}).get("email_address"))
    outcome.touched(account_id)


@handles(
    PROVIDER,
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.PENDING",
    "PAYMENT.CAPTURE.DENIED",
    "PAYMENT.CAPTURE.DECLINED",
)
def capture_changed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Completed → the order's credits (one grant per order, shared with the capture endpoint),
    payment and invoice; denied/declined → a failed payment, no credits; pending → wait."""
    capture = paypal_orders.CaptureResult.from_capture(_resource(event))
    if capture.status == "UNKNOWN":
        # A payload without a status: the event type says it.
        capture = replace(capture, status=event.type.rsplit(".", 1)[-1])
    paypal_orders.grant_capture(session, outcome, capture, at=now, source_event_id=event.id)
    outcome.touched(paypal_orders.parse_custom_id(capture.custom_id)[0])


@handles(PROVIDER, "PAYMENT.CAPTURE.REFUNDED")
def capture_refunded(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Take back the refunded share of the order's credits. The resource is the refund; its
    capture is the `up` link, and `seller_payable_breakdown.total_refunded_amount` is cumulative."""
    refund = _resource(event)
    capture_id = _refunded_capture_id(refund)
    if not capture_id:
        raise PermanentError(f"refund {refund.get('id')} names no capture")
    found = payments.find_payment_by_charge_ref(session, PROVIDER, capture_id, lock=False)
    if found is None:
        raise RetryLater(f"no payment known yet for capture {capture_id}")
    account, payment = _lock_for_refund(session, outcome, found)
    _refund(
        session,
        outcome,
        event,
        account,
        payment,
        refund,
        key=f"paypal:refund:{refund.get('id') or event.event_id}",
        now=now,
    )


@handles(PROVIDER, "PAYMENT.SALE.REFUNDED")
def sale_refunded(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Take back the refunded share of the credits a subscription sale's period granted. The
    resource is a Payments v1 refund naming its sale (`sale_id`, or the `sale` link)."""
    refund = _resource(event)
    sale_id = _refunded_sale_id(refund)
    if not sale_id:
        raise PermanentError(f"refund {refund.get('id')} names no sale")
    found = payments.find_payment(session, PROVIDER, sale_id)
    if found is None:
        raise RetryLater(f"no payment known yet for sale {sale_id}")
    account, payment = _lock_for_refund(session, outcome, found)
    _refund(
        session,
        outcome,
        event,
        account,
        payment,
        refund,
        key=f"paypal:sale_refund:{refund.get('id') or event.event_id}",
        now=now,
    )


def _lock_for_refund(session: Session, outcome: Outcome, found: Payment) -> tuple[Account, Payment]:
    """Account, then the payment's subscription (a sale's), then the payment itself."""
    outcome.touched(found.account_id)
    account = lock_account(session, found.account_id)
    subscription = session.get(Subscription, found.subscription_id) if found.subscription_id else None
    if subscription is not None:
        subscriptions.lock_or_create_subscription(
            session,
            provider=subscription.provider,
            provider_subscription_id=subscription.provider_subscription_id,
            account_id=subscription.account_id,
        )
    return account, payments.find_payment(session, PROVIDER, found.provider_payment_id, lock=True)


def _refund(
    session: Session,
    outcome: Outcome,
    event: WebhookEvent,
    account: Account,
    payment: Payment,
    refund: dict,
    *,
    key: str,
    now: datetime,
) -> None:
    """Reverse the credits of the cumulative refunded amount once, and tell the customer: one
    email per refunded level, and low_credits if the reversal crossed the threshold."""
    refunds.reverse_refunded_credits(
        session,
        outcome,
        account,
        payment,
        amount_refunded_cents=_refunded_total(refund, payment),
        idempotency_key=key,
        at=now,
        source_event_id=event.id,
    )


def _refunded_total(refund: dict, payment: Payment) -> int:
    """The cumulative refunded amount: PayPal's total when the refund carries it (Orders v2
    `seller_payable_breakdown.total_refunded_amount`, Payments v1 `total_refunded_amount`), else
    what was refunded before plus this refund."""
    breakdown = refund.get("seller_payable_breakdown") or {}
    total = breakdown.get("total_refunded_amount") or refund.get("total_refunded_amount") or {}
    if total.get("value") is not None:
        return parse_amount(total["value"], total.get("currency_code") or total.get("currency") or payment.currency)
    amount = refund.get("amount") or {}
    value = amount.get("value", amount.get("total", "0"))
    this = parse_amount(
        str(value).lstrip("-"), amount.get("currency_code") or amount.get("currency") or payment.currency
    )
    return payment.amount_refunded_cents + this


def _refunded_sale_id(refund: dict) -> str | None:
    if refund.get("sale_id"):
        return refund["sale_id"]
    for link in refund.get("links") or []:
        href = link.get("href") or ""
        if link.get("rel") == "sale" and "/sale/" in href:
            return href.rstrip("/").rsplit("/", 1)[-1]
    return None


def _refunded_capture_id(refund: dict) -> str | None:
    related = (refund.get("supplementary_data") or {}).get("related_ids") or {}
    if related.get("capture_id"):
        return related["capture_id"]
    for link in refund.get("links") or []:
        href = link.get("href") or ""
        if link.get("rel") == "up" and "/captures/" in href:
            return href.rstrip("/").rsplit("/", 1)[-1]
    return None


# -- subscriptions ----------------------------------------------------------------------------


@handles(PROVIDER, "BILLING.SUBSCRIPTION.ACTIVATED")
def subscription_activated(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Active for the account in custom_id, on the plan PayPal names; the first period's credits
    once (the first sale shares the key)."""
    resource = _resource(event)
    subscription, plan = _lock_from_resource(session, outcome, resource)
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
            current_period_start=_time(resource.get("start_time")) or _event_at(event),
            current_period_end=_time(billing.get("next_billing_time")),
        ),
        event_at=_event_at(event),
        event_id=event.event_id,
        now=now,
    )
    plan = plan or _plan(session, subscription.plan_id)
    if plan is None:
        raise PermanentError(f"PayPal subscription {resource['id']} is on no known plan")
    subscriptions.grant_period_credits(
        session,
        outcome,
        subscription,
        plan,
        idempotency_key=_initial_key(resource["id"]),
        at=now,
        source_event_id=event.id,
    )
    if subscription.status == subscriptions.ACTIVE:  # not when a newer cancellation was applied first
        notifications.subscription_activated(session, outcome, subscription, plan)


@handles(PROVIDER, "PAYMENT.SALE.COMPLETED")
def sale_completed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """A subscription payment: a payment row, and the period's credits once. Sales of other kinds
    (no billing_agreement_id) are not billhook's."""
    sale = _resource(event)
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
    plan = _plan(session, subscription.plan_id)
    if plan is None:
        raise RetryLater(f"plan of PayPal subscription {subscription_id} not known yet")
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
            credits_granted=plan.included_credits,
        ),
        at=now,
    )
    key = _sale_key(subscription, plan, sale, subscription_id, _event_at(event))
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
    if key == _initial_key(subscription_id):
        # The first period's receipt (its activation email came with BILLING.SUBSCRIPTION.ACTIVATED).
        notifications.payment_confirmation(
            session, outcome, payment, description=f"{plan.name} plan", credits=plan.included_credits
        )
    else:
        # A sale names no period end; the email leaves the next renewal date out.
        notifications.subscription_renewal(session, outcome, subscription, plan, payment, period_end=None)


def _sale_key(subscription: Subscription, plan: Plan, sale: dict, subscription_id: str, event_at: datetime) -> str:
    sold_at = _time(sale.get("create_time")) or event_at
    half = _HALF_INTERVAL.get(plan.interval, _HALF_INTERVAL["month"])
    if sold_at < subscription.current_period_start + half:
        return _initial_key(subscription_id)
    return f"paypal:subscription:{subscription_id}:sale:{sale['id']}"


_STATUS_EVENTS = {
    "BILLING.SUBSCRIPTION.CANCELLED": subscriptions.CANCELED,
    "BILLING.SUBSCRIPTION.EXPIRED": subscriptions.CANCELED,
    "BILLING.SUBSCRIPTION.SUSPENDED": PAUSED,
}


@handles(PROVIDER, *_STATUS_EVENTS)
def subscription_status_changed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Cancelled/expired/suspended, applied only if no newer event was (out-of-order safe)."""
    resource = _resource(event)
    subscription, plan = _lock_from_resource(session, outcome, resource)
    status = _STATUS_EVENTS[event.type]
    changed_at = _time(resource.get("status_update_time")) or _event_at(event)
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=status,
            plan_id=plan.id if plan else None,
            canceled_at=changed_at if status == subscriptions.CANCELED else None,
        ),
        event_at=_event_at(event),
        event_id=event.event_id,
        now=now,
    )


def _lock_from_resource(session: Session, outcome: Outcome, resource: dict) -> tuple[Subscription, Plan | None]:
    """The subscription row (created on first sight) for the account billhook put in custom_id;
    a row already known keeps its account."""
    subscription_id = resource.get("id")
    if not subscription_id:
        raise PermanentError("subscription event has no subscription id")
    existing = subscriptions.find_subscription(session, PROVIDER, subscription_id)
    plan = _plan_for(session, resource)
    if existing is not None:
        account_id = existing.account_id
    else:
        account_id, _ = paypal_orders.parse_custom_id(resource.get("custom_id"))
    account = ensure_account(session, account_id)  # the account first: see ensure_account
    _remember_email(account, (resource.get("subscriber") or {}).get("email_address"))
    outcome.touched(account_id)
    subscription = subscriptions.lock_or_create_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=account_id
    )
    return subscription, plan


def _plan_for(session: Session, resource: dict) -> Plan | None:
    paypal_plan_id = resource.get("plan_id")
    if paypal_plan_id:
        plan = session.scalars(select(Plan).filter_by(paypal_plan_id=paypal_plan_id)).one_or_none()
        if plan is not None:
            return plan
    custom_id = resource.get("custom_id")
    if isinstance(custom_id, str) and ":" in custom_id:
        return _plan(session, custom_id.rsplit(":", 1)[1])
    return None


def _plan(session: Session, plan_id: str | None) -> Plan | None:
    return session.get(Plan, plan_id) if plan_id else None


def _initial_key(subscription_id: str) -> str:
    return f"paypal:subscription:{subscription_id}:initial"


def _remember_email(account: Account, email: str | None) -> None:
    """The PayPal buyer's address, for the emails, only when billhook knows none: the main app's
    address for the account wins over the PayPal login's."""
    if isinstance(email, str) and email and not account.email:
        account.email = email
