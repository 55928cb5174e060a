"""PayPal disputes and reversals: a dispute (CUSTOMER.DISPUTE.*, Disputes v1 resource) takes back
the disputed share of the payment's credits while open and gives it back when the seller wins,
as Stripe's do (shared.billing.disputes); a reversal of a subscription sale or an order capture
(PAYMENT.SALE.REVERSED, PAYMENT.CAPTURE.REVERSED: PayPal took the money back, a chargeback
without a dispute or its end) takes back all of the payment's credits not already taken back and
credits the payment's invoice, through the same path as a refund (shared.billing.refunds)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import disputes, invoices, payments, refunds
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import WebhookEvent
from shared.outcome import Outcome
from shared.paypal.amounts import parse_amount
from shared.paypal.client import PROVIDER
from shared.paypal.handlers.common import event_at, lock_for_payment, parse_time, resource_of

# dispute_outcome.outcome_code of a resolved dispute: who kept the money.
_WON = {"RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER", "DENIED"}
_LOST = {"RESOLVED_BUYER_FAVOUR", "RESOLVED_WITH_PAYOUT", "ACCEPTED"}


@handles(PROVIDER, "CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.UPDATED", "CUSTOMER.DISPUTE.RESOLVED")
def dispute_changed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    dispute = resource_of(event)
    dispute_id = dispute.get("dispute_id")
    if not isinstance(dispute_id, str) or not dispute_id:
        raise PermanentError("dispute event has no dispute_id")
    state = _state(event.type, dispute)
    transaction_ids = [
        t.get("seller_transaction_id")
        for t in dispute.get("disputed_transactions") or []
        if isinstance(t, dict) and t.get("seller_transaction_id")
    ]
    if not transaction_ids:
        raise PermanentError(f"dispute {dispute_id} names no seller transaction")
    found = next(
        (p for t in transaction_ids if (p := payments.find_payment_by_charge_ref(session, PROVIDER, t, lock=False))),
        None,
    )
    if found is None:
        raise RetryLater(f"no payment known yet for dispute {dispute_id}")
    account, payment = lock_for_payment(session, outcome, found)
    amount = dispute.get("dispute_amount") or {}
    currency = amount.get("currency_code") or payment.currency
    disputes.apply_dispute(
        session,
        outcome,
        account,
        payment,
        disputes.DisputeReport(
            provider=PROVIDER,
            provider_dispute_id=dispute_id,
            state=state,
            amount_cents=parse_amount(amount["value"], currency) if amount.get("value") else payment.amount_cents,
            currency=currency,
            provider_status=_provider_status(dispute),
            reason=dispute.get("reason"),
            opened_at=parse_time(dispute.get("create_time")),
        ),
        event_at=event_at(event),
        at=now,
        source_event_id=event.id,
    )


def _state(event_type: str, dispute: dict) -> str:
    code = (dispute.get("dispute_outcome") or {}).get("outcome_code")
    if code in _WON:
        return disputes.WON
    if code in _LOST:
        return disputes.LOST
    if event_type == "CUSTOMER.DISPUTE.RESOLVED" or dispute.get("status") == "RESOLVED":
        raise PermanentError(f"dispute {dispute.get('dispute_id')} resolved with unknown outcome {code!r}")
    return disputes.OPEN


def _provider_status(dispute: dict) -> str | None:
    status = dispute.get("status")
    code = (dispute.get("dispute_outcome") or {}).get("outcome_code")
    return f"{status}:{code}" if status and code else status


@handles(PROVIDER, "PAYMENT.SALE.REVERSED", "PAYMENT.CAPTURE.REVERSED")
def payment_reversed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    resource = resource_of(event)
    ref = _reversed_payment_ref(event.type, resource)
    if not ref:
        raise PermanentError(f"reversal {resource.get('id')} names no payment")
    found = payments.find_payment_by_charge_ref(session, PROVIDER, ref, lock=False) or payments.find_payment(
        session, PROVIDER, ref
    )
    if found is None:
        raise RetryLater(f"no payment known yet for reversed {ref}")
    account, payment = lock_for_payment(session, outcome, found)
    refunds.reverse_refunded_credits(
        session,
        outcome,
        account,
        payment,
        amount_refunded_cents=payment.amount_cents,
        idempotency_key=f"paypal:reversal:{ref}",
        at=now,
        source_event_id=event.id,
        reason=invoices.REVERSAL,
    )


def _reversed_payment_ref(event_type: str, resource: dict) -> str | None:
    """The reversed sale or capture. A Payments v1 reversal names its sale (`sale_id`, or the
    `sale` link) or is the sale itself (state `reversed`); an Orders v2 one is the capture, or a
    refund-like object whose `up` link is the capture."""
    if resource.get("sale_id"):
        return resource["sale_id"]
    wanted = ("sale", "/sale/") if event_type == "PAYMENT.SALE.REVERSED" else ("up", "/captures/")
    for link in resource.get("links") or []:
        href = link.get("href") or ""
        if link.get("rel") == wanted[0] and wanted[1] in href:
            return href.rstrip("/").rsplit("/", 1)[-1]
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return related.get("capture_id") or resource.get("id")
