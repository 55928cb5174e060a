"""Which email each customer-facing change sends, and under which key.

Every key names the change it tells about (a provider payment, a subscription, a refund level,
a ledger entry), so a replayed or duplicated event finds the key taken and queues nothing.
Provider-neutral: the Stripe and PayPal handlers call the same functions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import invoices, payments
from shared.email.outbox import queue_account_email
from shared.models import Account, Payment, Plan, Subscription
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


def payment_confirmation(
    session: Session, outcome: Outcome, payment: Payment, *, description: str, credits: int | None = None
) -> bool:
    """A receipt for a paid invoice or a credit purchase, once per provider payment."""
    if not payment.amount_cents:
        return False  # nothing was charged (a trial, a 100% coupon): no receipt
    return _queue_receipt(
        session,
        outcome,
        payment,
        payment.account_id,
        template="payment_confirmation",
        context={**_money(payment), "description": description, "credits": credits},
        idempotency_key=f"email:payment_confirmation:{payment.provider}:{payment.provider_payment_id}",
    )


def subscription_activated(session: Session, outcome: Outcome, subscription: Subscription, plan: Plan) -> bool:
    """Once per provider subscription, whichever of its first events arrives first."""
    return queue_account_email(
        session,
        outcome,
        subscription.account_id,
        template="subscription_activated",
        context={
            "plan_name": plan.name,
            "credits": plan.included_credits,
            "period_end": _date(subscription.current_period_end),
        },
        idempotency_key=f"email:subscription_activated:{subscription.provider}:{subscription.provider_subscription_id}",
    )


def subscription_renewal(
    session: Session,
    outcome: Outcome,
    subscription: Subscription,
    plan: Plan,
    payment: Payment,
    *,
    period_end: datetime | None,
) -> bool:
    """The receipt for a renewal, once per renewal payment (it stands in for payment_confirmation)."""
    return _queue_receipt(
        session,
        outcome,
        payment,
        subscription.account_id,
        template="subscription_renewal",
        context={
            **_money(payment),
            "plan_name": plan.name,
            "credits": plan.included_credits,
            "period_end": _date(period_end),
        },
        idempotency_key=f"email:subscription_renewal:{payment.provider}:{payment.provider_payment_id}",
    )


def payment_failed(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    provider: str,
    reference: str,
    amount_cents: int,
    currency: str,
    description: str,
    reason: str | None = None,
    at: datetime,
) -> bool:
    """Once per failed invoice (or checkout), however many collection attempts fail; the main app
    hears of it once too (`payment.failed`)."""
    if session.get(Account, account_id) is not None:
        outgoing.emit(
            session,
            outcome,
            account_id=account_id,
            type="payment.failed",
            key=f"payment.failed:{provider}:{reference}",
            data={
                "payment": {
                    "provider": provider,
                    "id": reference,
                    "status": "failed",
                    "amount_cents": amount_cents,
                    "currency": currency.lower(),
                }
            },
            at=at,
        )
    return queue_account_email(
        session,
        outcome,
        account_id,
        template="payment_failed",
        context={
            "amount_cents": amount_cents,
            "currency": currency.lower(),
            "description": description,
            "reason": reason,
        },
        idempotency_key=f"email:payment_failed:{provider}:{reference}",
    )


def payment_action_required(
    session: Session,
    outcome: Outcome,
    *,
    account_id: str,
    provider: str,
    reference: str,
    amount_cents: int,
    currency: str,
    description: str,
    action_url: str,
) -> bool:
    """Once per invoice whose payment waits for the customer's authentication (SCA, 3-D Secure),
    however many attempts ask again."""
    return queue_account_email(
        session,
        outcome,
        account_id,
        template="payment_action_required",
        context={
            "amount_cents": amount_cents,
            "currency": currency.lower(),
            "description": description,
            "action_url": action_url,
        },
        idempotency_key=f"email:payment_action_required:{provider}:{reference}",
    )


def trial_ending(
    session: Session, outcome: Outcome, subscription: Subscription, plan: Plan | None, *, trial_end: datetime | None
) -> bool:
    """Once per subscription trial: the key names the trial's end, so a trial extended to a new
    end date warns again, and a redelivered warning does not."""
    end = trial_end or subscription.current_period_end
    return queue_account_email(
        session,
        outcome,
        subscription.account_id,
        template="trial_ending",
        context={"plan_name": plan.name if plan else "subscription", "trial_end": _date(end)},
        idempotency_key=(
            f"email:trial_ending:{subscription.provider}:{subscription.provider_subscription_id}:"
            f"{int(end.timestamp()) if end else 'unknown'}"
        ),
    )


def payment_approved(
    session: Session,
    outcome: Outcome,
    payment: Payment,
    *,
    description: str,
    credits: int | None,
    period_end: datetime | None,
) -> bool:
    """Once per manual payment, when an operator approves it."""
    return _queue_receipt(
        session,
        outcome,
        payment,
        payment.account_id,
        template="payment_approved",
        context={
            **_money(payment),
            "description": description,
            "credits": credits,
            "period_end": _date(period_end),
        },
        idempotency_key=f"email:payment_approved:{payment.provider}:{payment.provider_payment_id}",
    )


def payment_rejected(
    session: Session, outcome: Outcome, payment: Payment, *, description: str, reason: str | None
) -> bool:
    """Once per manual payment, when an operator rejects it."""
    return queue_account_email(
        session,
        outcome,
        payment.account_id,
        template="payment_rejected",
        context={**_money(payment), "description": description, "reason": reason},
        idempotency_key=f"email:payment_rejected:{payment.provider}:{payment.provider_payment_id}",
    )


def refund_notification(
    session: Session,
    outcome: Outcome,
    payment: Payment,
    *,
    refunded_before_cents: int,
    credits_reversed: int,
    description: str,
) -> bool:
    """Once per refunded amount level of a payment: a partial refund and the rest are two emails,
    a replay of either is none. Call after `payments.apply_refund` (which moved the level)."""
    refunded_now = payment.amount_refunded_cents - refunded_before_cents
    if refunded_now <= 0:
        return False
    return queue_account_email(
        session,
        outcome,
        payment.account_id,
        template="refund_notification",
        context={
            "amount_cents": refunded_now,
            "currency": payment.currency,
            "description": description,
            "credits_reversed": credits_reversed or None,
        },
        idempotency_key=(
            f"email:refund_notification:{payment.provider}:{payment.provider_payment_id}:{payment.amount_refunded_cents}"
        ),
    )


def low_credits_if_crossed(
    session: Session, outcome: Outcome, account: Account, *, before: int, after: int, cause_key: str, at: datetime
) -> bool:
    """Once each time the balance falls below the account's threshold: keyed on the ledger entry
    that crossed it, so the next crossing (after a top-up) emails again. The caller holds the
    account lock (`accounts.lock_account`) while it reads `before` and writes the entry."""
    threshold = account.low_credits_threshold
    if not (before >= threshold > after):
        return False
    outgoing.emit(
        session,
        outcome,
        account_id=account.id,
        type="credits.low",
        key=f"credits.low:{cause_key}",
        data={"credits": {"balance": after, "threshold": threshold, "reference": cause_key}},
        at=at,
    )
    return queue_account_email(
        session,
        outcome,
        account.id,
        template="low_credits",
        context={"balance": after, "threshold": threshold},
        idempotency_key=f"email:low_credits:{cause_key}",
    )


def _money(payment: Payment) -> dict:
    return {"amount_cents": payment.amount_cents, "currency": payment.currency}


def _queue_receipt(
    session: Session,
    outcome: Outcome,
    payment: Payment,
    account_id: str,
    *,
    template: str,
    context: dict,
    idempotency_key: str,
) -> bool:
    """A receipt showing the payment's invoice number: an invoice numbered at the commit
    (`invoices.number_at_commit`) fills it in then."""
    invoice = payments.invoice_for_payment(session, payment.id)
    unnumbered = invoice is not None and invoice.number is None

    def queued(outbox_id: int, stored: dict) -> None:
        invoices.show_number_in_email(session, invoice, outbox_id, stored)

    return queue_account_email(
        session,
        outcome,
        account_id,
        template=template,
        context={**context, "invoice_number": invoice.number if invoice else None},
        idempotency_key=idempotency_key,
        queued=queued if unnumbered else None,
    )


def _date(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None
