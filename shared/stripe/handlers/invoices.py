"""Invoices: subscription payments, one period of plan credits each, and payment failures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.billing import catalog, duplicates, notifications, payments, subscriptions
from shared.billing.accounts import ensure_account
from shared.billing.subscriptions import SubscriptionChange, SubscriptionStatus
from shared.errors import RetryLater
from shared.inbox.registry import handles
from shared.models import Invoice, Payment, Plan, Subscription, WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import (
    PROVIDER,
    data_object,
    event_at,
    expandable_id,
    initial_period_key,
    invoice_metadata,
    lock_subscription_for,
    missing,
    plan_by_id,
    ts,
)
from shared.stripe.handlers.trials import trial_days

# Invoices that bill a whole period of a subscription: they must say which plan and which period.
PERIOD_REASONS = ("subscription_create", "subscription_cycle")


@handles(PROVIDER, "invoice.paid", "invoice.payment_succeeded")
def invoice_paid(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    invoice = data_object(event)
    subscription_id = _subscription_id(event, invoice)
    if subscription_id is None:
        return  # a one-off invoice: checkout payments are handled from their session
    line = _subscription_line(invoice)
    # A proration line says nothing reliable about the plan (it may be the old price's credit) or
    # the period (it spans from the change): only a whole period's line is taken for them.
    full_line = line if _is_full_period_line(line) else None
    if invoice.get("billing_reason") in PERIOD_REASONS:
        _require_period_line(event, invoice, full_line)
    subscription = lock_subscription_for(session, outcome, subscription_id, invoice)
    plan = _invoice_plan(session, invoice, full_line, subscription)
    period = (full_line or {}).get("period") or {}
    trial = _is_trial_start(invoice)
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=SubscriptionStatus.TRIALING if trial else subscriptions.ACTIVE,
            # Only a whole period's line says the plan: a proration invoice's metadata is the
            # checkout's, the plan the subscription began on, not the one it was changed to.
            plan_id=plan.id if plan and full_line is not None else None,
            current_period_start=ts(period.get("start")),
            current_period_end=ts(period.get("end")),
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    duplicate = duplicates.settle(session, outcome, subscription, created_at=None, at=now, source_event_id=event.id)
    key = _period_key(invoice, subscription_id, line)
    # No key: a mid-period change (proration), paid, no new period; a trial's start grants nothing;
    # nor does a duplicate subscription (its payment says so: a refund of it takes nothing back).
    grants = key is not None and plan is not None and not trial and not duplicate
    payment, _ = payments.record_payment(
        session,
        outcome,
        payments.PaymentRecord(
            account_id=subscription.account_id,
            provider=PROVIDER,
            provider_payment_id=invoice["id"],
            provider_charge_ref=_payment_ref(invoice),
            kind="subscription",
            amount_cents=invoice.get("amount_paid") or 0,
            currency=invoice.get("currency") or "usd",
            plan_id=plan.id if plan else None,
            subscription_id=subscription.id,
            provider_invoice_id=invoice["id"],
            line_items=[
                {"description": li.get("description"), "amount_cents": li.get("amount"), "quantity": li.get("quantity")}
                for li in (invoice.get("lines") or {}).get("data", [])
            ]
            + _discount_lines(invoice),
            credits_granted=plan.included_credits if grants else None,
            hosted_url=invoice.get("hosted_invoice_url"),
        ),
        at=now,
    )
    if trial:
        return  # the trial's free first invoice: no credits, no receipt; the first paid one grants
    _paid_emails(session, outcome, invoice, subscription, None if duplicate else plan, payment, period)
    if key is None or plan is None:
        return
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


@handles(PROVIDER, "invoice.payment_failed")
def invoice_payment_failed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    invoice = data_object(event)
    subscription_id = _subscription_id(event, invoice)
    if subscription_id is None:
        return
    subscription = lock_subscription_for(session, outcome, subscription_id, invoice)
    # Stripe keeps a subscription whose first invoice fails `incomplete` (then `incomplete_expired`):
    # it never paid, so it is not promoted to `past_due`, a live status.
    first = invoice.get("billing_reason") == "subscription_create"
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(status=subscriptions.INCOMPLETE if first else subscriptions.PAST_DUE),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    duplicates.settle(session, outcome, subscription, created_at=None, at=now, source_event_id=event.id)
    paid = payments.find_payment(session, PROVIDER, invoice["id"])
    if paid is None or paid.status == payments.FAILED:  # a late failure of a paid invoice says nothing new
        _remember_customer(session, subscription.account_id, invoice)
        plan = _invoice_plan(session, invoice, _subscription_line(invoice), subscription)
        notifications.payment_failed(
            session,
            outcome,
            account_id=subscription.account_id,
            provider=PROVIDER,
            reference=invoice["id"],
            amount_cents=invoice.get("amount_due") or 0,
            currency=invoice.get("currency") or "usd",
            description=f"{plan.name} plan" if plan else "Your subscription",
            at=now,
        )


@handles(PROVIDER, "invoice_payment.paid")
def invoice_payment_paid(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Link an invoice's payment to its PaymentIntent. Since API 2025-03-31 an invoice no longer
    names its PaymentIntent (and `invoice.payments` is not in webhook payloads), and a refund names
    only the PaymentIntent: without this link a subscription payment's refund would never be matched."""
    invoice_payment = data_object(event)
    intent = expandable_id((invoice_payment.get("payment") or {}).get("payment_intent"))
    invoice_id = expandable_id(invoice_payment.get("invoice"))
    if not intent or not invoice_id:
        return  # paid out of band or by another kind of payment: there is nothing a refund could name
    payment = payments.find_payment(session, PROVIDER, invoice_id, lock=True)
    if payment is None:
        if session.scalars(select(Invoice.id).filter_by(provider=PROVIDER, provider_invoice_id=invoice_id)).first():
            return  # a checkout's invoice: its payment already names the checkout's PaymentIntent
        raise RetryLater(f"invoice {invoice_id} not recorded yet")
    outcome.touched(payment.account_id)
    if payment.provider_charge_ref is None:
        payment.provider_charge_ref = intent


def _paid_emails(
    session: Session,
    outcome: Outcome,
    invoice: dict,
    subscription: Subscription,
    plan: Plan | None,
    payment: Payment,
    period: dict,
) -> None:
    """A first invoice activates and confirms; a renewal's email is its receipt; any other paid
    invoice (a mid-period upgrade) is confirmed."""
    _remember_customer(session, subscription.account_id, invoice)
    reason = invoice.get("billing_reason")
    if plan is not None and reason == "subscription_create":
        notifications.subscription_activated(session, outcome, subscription, plan)
    if plan is not None and reason == "subscription_cycle":
        notifications.subscription_renewal(
            session, outcome, subscription, plan, payment, period_end=ts(period.get("end"))
        )
        return
    notifications.payment_confirmation(
        session,
        outcome,
        payment,
        description=f"{plan.name} plan" if plan else "Subscription",
        credits=plan.included_credits if plan is not None and reason == "subscription_create" else None,
    )


def _is_trial_start(invoice: dict) -> bool:
    """The free first invoice of a trial billhook asked for (a 100% coupon without a trial is paid)."""
    return (
        invoice.get("billing_reason") == "subscription_create"
        and not invoice.get("amount_paid")
        and trial_days(invoice_metadata(invoice)) > 0
    )


def _discount_lines(invoice: dict) -> list[dict]:
    """A coupon's or promotion code's discount on the invoice: Stripe's lines are before it."""
    return [
        {"description": "Discount", "amount_cents": -d["amount"], "quantity": 1}
        for d in invoice.get("total_discount_amounts") or []
        if isinstance(d, dict) and isinstance(d.get("amount"), int) and d["amount"] > 0
    ]


def _remember_customer(session: Session, account_id: str, invoice: dict) -> None:
    """An invoice may come before its checkout: take the address it carries for the emails."""
    ensure_account(session, account_id, email=invoice.get("customer_email"), name=invoice.get("customer_name"))


def _subscription_id(event: WebhookEvent, invoice: dict) -> str | None:
    """The invoice's subscription; None for a one-off invoice. An invoice billed for a subscription
    (its billing reason says so) that does not name it is in a shape billhook cannot read."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription_id = expandable_id(details.get("subscription"))
    if subscription_id is None and str(invoice.get("billing_reason") or "").startswith("subscription"):
        raise missing(event, invoice, "parent.subscription_details.subscription")
    return subscription_id


def _require_period_line(event: WebhookEvent, invoice: dict, line: dict | None) -> None:
    """A period's invoice grants that period's credits for its plan: without a line naming both,
    it would be recorded as a payment with no plan and no credits."""
    if line is None:
        raise missing(event, invoice, "lines.data[].parent.subscription_item_details")
    if not (line.get("period") or {}).get("start"):
        raise missing(event, invoice, "lines.data[].period")
    if not _line_price_id(line):
        raise missing(event, invoice, "lines.data[].pricing.price_details.price")


def _subscription_line(invoice: dict) -> dict | None:
    lines = (invoice.get("lines") or {}).get("data") or []
    for line in lines:
        if _is_full_period_line(line):
            return line
    return lines[0] if lines else None


def _is_full_period_line(line: dict | None) -> bool:
    """A subscription item billed for a whole period, not a proration of one."""
    parent = (line or {}).get("parent") or {}
    return parent.get("type") == "subscription_item_details" and not (
        parent.get("subscription_item_details") or {}
    ).get("proration")


def _line_price_id(line: dict | None) -> str | None:
    if not line:
        return None
    details = (line.get("pricing") or {}).get("price_details") or {}
    return expandable_id(details.get("price"))


def _invoice_plan(session: Session, invoice: dict, line: dict | None, subscription: Subscription) -> Plan | None:
    return (
        catalog.plan_by_stripe_price(session, _line_price_id(line))
        or plan_by_id(session, invoice_metadata(invoice).get("plan_id"))
        or plan_by_id(session, subscription.plan_id)
    )


def _payment_ref(invoice: dict) -> str | None:
    """What a refund of this invoice's payment names: its PaymentIntent, else its Charge (an
    invoice paid by a bare charge, which older API versions show on `invoice.charge`)."""
    for item in (invoice.get("payments") or {}).get("data") or []:
        payment = item.get("payment") or {}
        ref = expandable_id(payment.get("payment_intent")) or expandable_id(payment.get("charge"))
        if ref:
            return ref
    return None


def _period_key(invoice: dict, subscription_id: str, line: dict | None) -> str | None:
    """One grant per billing period. The first invoice shares its key with the checkout
    completion, so whichever arrives first grants and the other finds the key taken.

    A plan change invoices `subscription_update`: prorations only while the period goes on (no new
    credits), but a whole new period when the change restarted the billing cycle (Stripe does so
    when the interval changes, e.g. monthly to yearly): that period's credits are granted like a
    renewal's, under the same key scheme, so the period is never granted twice."""
    reason = invoice.get("billing_reason")
    if reason == "subscription_create":
        return initial_period_key(subscription_id)
    start = ((line or {}).get("period") or {}).get("start")
    if not start:
        return None
    if reason == "subscription_cycle" or (reason == "subscription_update" and _is_full_period_line(line)):
        return f"stripe:subscription:{subscription_id}:period:{start}"
    return None
