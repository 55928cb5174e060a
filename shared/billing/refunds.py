"""A refund or a reversal, whichever provider reports it: the credits taken back once, a credit
note against the payment's invoice once, and the customer told of a refund."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import invoices, ledger, notifications, payments
from shared.models import Account, Payment
from shared.outcome import Outcome


def reverse_refunded_credits(
    session: Session,
    outcome: Outcome,
    account: Account,
    payment: Payment,
    *,
    amount_refunded_cents: int,
    idempotency_key: str,
    at: datetime,
    source_event_id: int | None = None,
    reason: str = invoices.REFUND,
) -> int:
    """Reverse the credits of the cumulative refunded amount once (see `payments.apply_refund`),
    credit the invoice with what this call newly refunded, queue low_credits when the reversal
    crossed the account's threshold, and for a refund (`reason` REFUND) one email per refunded
    level: a reversal (the provider took the money back, e.g. a chargeback) is no refund of ours,
    so the refund email would tell the customer something untrue. The caller holds the account
    lock, then the payment lock. Returns credits reversed."""
    balance_before = ledger.balance(session, payment.account_id)
    refunded_before = payment.amount_refunded_cents
    reversed_credits = payments.apply_refund(
        session,
        outcome,
        payment,
        amount_refunded_cents=amount_refunded_cents,
        idempotency_key=idempotency_key,
        at=at,
        source_event_id=source_event_id,
    )
    invoice = payments.invoice_for_payment(session, payment.id)
    if invoice is not None:
        invoices.issue_credit_note(
            session,
            invoice,
            reason=reason,
            amount_cents=payment.amount_refunded_cents - refunded_before,
            idempotency_key=f"credit_note:{idempotency_key}",
            at=at,
        )
    if reason == invoices.REFUND:
        notifications.refund_notification(
            session,
            outcome,
            payment,
            refunded_before_cents=refunded_before,
            credits_reversed=reversed_credits,
            description=f"Invoice {invoice.number}" if invoice and invoice.number else "Your payment",
        )
    notifications.low_credits_if_crossed(
        session,
        outcome,
        account,
        before=balance_before,
        after=balance_before - reversed_credits,
        cause_key=idempotency_key,
        at=at,
    )
    return reversed_credits
