"""Payments, billhook's numbered invoices, and refunds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.billing import invoices, ledger
from shared.billing.accounts import lock_account
from shared.db import for_update, held_in_transaction, insert_ignore_row
from shared.models import Invoice, Payment
from shared.outcome import Outcome
from shared.outgoing import events as outgoing


class PaymentStatus(StrEnum):
    """A payment's `status`."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"  # e.g. a PayPal capture under review; a completion or a denial follows
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


SUCCEEDED = PaymentStatus.SUCCEEDED
FAILED = PaymentStatus.FAILED
PENDING = PaymentStatus.PENDING
REFUNDED = PaymentStatus.REFUNDED
PARTIALLY_REFUNDED = PaymentStatus.PARTIALLY_REFUNDED


@dataclass(frozen=True)
class PaymentRecord:
    account_id: str
    provider: str
    provider_payment_id: str
    kind: str
    amount_cents: int
    currency: str
    status: str = SUCCEEDED
    provider_charge_ref: str | None = None
    plan_id: str | None = None
    package_id: str | None = None
    subscription_id: int | None = None
    provider_invoice_id: str | None = None
    line_items: list = field(default_factory=list)
    failure_message: str | None = None
    # The credits this payment grants (what a refund of it takes back); None: this record does not say.
    credits_granted: int | None = None
    hosted_url: str | None = None  # the provider's page for the invoice (Stripe's hosted_invoice_url)


def record_payment(session: Session, outcome: Outcome, record: PaymentRecord, *, at: datetime) -> tuple[Payment, bool]:
    """The payment row for this provider payment, created once; a succeeded one gets an invoice
    and its `payment.succeeded` event.

    Returns (payment, created_now).
    """
    values = {
        "account_id": record.account_id,
        "provider": record.provider,
        "provider_payment_id": record.provider_payment_id,
        "provider_charge_ref": record.provider_charge_ref,
        "kind": record.kind,
        "status": record.status,
        "amount_cents": record.amount_cents,
        "currency": record.currency.lower(),
        "plan_id": record.plan_id,
        "package_id": record.package_id,
        "subscription_id": record.subscription_id,
        "failure_message": record.failure_message,
        "credits_granted": record.credits_granted or 0,  # in the INSERT: no UPDATE for it after
        "created_at": at,
        "updated_at": at,
    }
    # Lock order, as everywhere: the account first (the payment's foreign key would take a share
    # lock on it that a later FOR UPDATE waits on), then the payment, then the invoice counter,
    # which every issuing transaction of the year waits on. A caller that holds the account
    # already, as every handler does, pays nothing for this.
    lock_account(session, record.account_id)
    # A new row comes back from the INSERT itself (this transaction created it: nobody else can
    # change it); an existing one is locked and loaded.
    payment = insert_ignore_row(session, Payment, values, ["provider", "provider_payment_id"])
    created = payment is not None
    if payment is None:
        payment = find_payment(session, record.provider, record.provider_payment_id, lock=True)
    if not created and payment.provider_charge_ref is None and record.provider_charge_ref:
        payment.provider_charge_ref = record.provider_charge_ref
    if not created and record.credits_granted is not None:
        payment.credits_granted = record.credits_granted  # an UPDATE only when it changes
    succeeded_now = created and record.status == SUCCEEDED
    if not created and payment.status in (FAILED, PENDING) and record.status == SUCCEEDED:
        # A failure or a pending state was recorded first (events arrive in any order, or the
        # payment was retried): the success wins, and only now is there something to invoice.
        payment.status = SUCCEEDED
        payment.failure_message = None
        payment.provider_charge_ref = record.provider_charge_ref or payment.provider_charge_ref
        payment.updated_at = at
        succeeded_now = invoice_for_payment(session, payment.id) is None
    if succeeded_now:
        _issue_invoice(session, payment, record, at)
        tell_main_app(session, outcome, payment, "payment.succeeded", at=at)
    return payment, created


def payment_data(payment: Payment) -> dict:
    return {
        "provider": payment.provider,
        "id": payment.provider_payment_id,
        "kind": payment.kind,
        "status": payment.status,
        "amount_cents": payment.amount_cents,
        "amount_refunded_cents": payment.amount_refunded_cents,
        "currency": payment.currency,
        "plan_id": payment.plan_id,
        "package_id": payment.package_id,
    }


def tell_main_app(session: Session, outcome: Outcome, payment: Payment, type_: str, *, at: datetime) -> bool:
    """The payment's outgoing event, once per payment and type (a refund: per refunded level)."""
    level = f":{payment.amount_refunded_cents}" if type_ == "payment.refunded" else ""
    return outgoing.emit(
        session,
        outcome,
        account_id=payment.account_id,
        type=type_,
        key=f"{type_}:{payment.provider}:{payment.provider_payment_id}{level}",
        data={"payment": payment_data(payment)},
        at=at,
    )


def _issue_invoice(session: Session, payment: Payment, record: PaymentRecord, at: datetime) -> Invoice:
    return invoices.issue_invoice(
        session,
        payment,
        provider=record.provider,
        provider_invoice_id=record.provider_invoice_id,
        amount_cents=record.amount_cents,
        line_items=record.line_items,
        hosted_url=record.hosted_url,
        at=at,
    )


_FIND_PAYMENT = select(Payment).where(
    Payment.provider == bindparam("provider"), Payment.provider_payment_id == bindparam("provider_payment_id")
)
_LOCK_PAYMENT = for_update(_FIND_PAYMENT)
_INVOICE_FOR_PAYMENT = select(Invoice).where(Invoice.payment_id == bindparam("payment_id"))


def find_payment(session: Session, provider: str, provider_payment_id: str, *, lock: bool = False) -> Payment | None:
    params = {"provider": provider, "provider_payment_id": provider_payment_id}
    return session.scalars(_LOCK_PAYMENT if lock else _FIND_PAYMENT, params).one_or_none()


def find_payment_by_charge_ref(
    session: Session, provider: str, charge_ref: str, *, lock: bool = True
) -> Payment | None:
    stmt = select(Payment).filter_by(provider=provider, provider_charge_ref=charge_ref)
    if lock:
        stmt = for_update(stmt)
    return session.scalars(stmt).first()


def invoice_for_payment(session: Session, payment_id: int) -> Invoice | None:
    issued = held_in_transaction(session).get((Invoice, payment_id))
    if issued is not None:
        return issued
    return session.scalars(_INVOICE_FOR_PAYMENT, {"payment_id": payment_id}).one_or_none()


def apply_refund(
    session: Session,
    outcome: Outcome,
    payment: Payment,
    *,
    amount_refunded_cents: int,
    idempotency_key: str,
    at: datetime,
    source_event_id: int | None = None,
) -> int:
    """Take back the credits the refunded share of a payment granted. `amount_refunded_cents` is
    the cumulative refunded amount, as providers report it, so a partial refund followed by the
    rest reverses everything once. The payment row must be locked by the caller.

    Returns the credits reversed by this call.
    """
    refunded = min(max(amount_refunded_cents, payment.amount_refunded_cents), payment.amount_cents)
    refunded_more = refunded > payment.amount_refunded_cents
    payment.amount_refunded_cents = refunded
    if payment.amount_cents == 0 or refunded >= payment.amount_cents:
        payment.status = REFUNDED
        target = payment.credits_granted
    else:
        payment.status = PARTIALLY_REFUNDED if refunded else payment.status
        target = payment.credits_granted * refunded // payment.amount_cents
    if refunded_more:
        tell_main_app(session, outcome, payment, "payment.refunded", at=at)
    owed = target - ledger.reversed_for_payment(session, payment.id)
    if owed <= 0:
        return 0
    added = ledger.add_entry(
        session,
        outcome,
        account_id=payment.account_id,
        amount=-owed,
        kind=ledger.REFUND_REVERSAL,
        description=f"Refund of payment {payment.provider_payment_id}",
        idempotency_key=idempotency_key,
        at=at,
        payment_id=payment.id,
        source_event_id=source_event_id,
    )
    return owed if added else 0


def issue_invoice(session: Session, payment: Payment, record: PaymentRecord, *, at: datetime) -> Invoice:
    """billhook's numbered invoice for a payment not yet succeeded (a manual payment's, issued
    with its payment instructions while it waits): numbered like every other invoice."""
    return _issue_invoice(session, payment, record, at)
