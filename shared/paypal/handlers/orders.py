"""PayPal Orders v2 handlers: an approved order (the capture task's intent), its capture's
outcome, and refunds of captures and of subscription sales."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import payments, refunds
from shared.billing.accounts import ensure_account
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import Account, Payment, WebhookEvent
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from shared.paypal.amounts import parse_amount
from shared.paypal.client import PROVIDER
from shared.paypal.handlers.common import lock_for_payment, remember_email, resource_of


@handles(PROVIDER, "CHECKOUT.ORDER.APPROVED")
def order_approved(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Record whose order this is. The handled event is the intent to capture: the capture task
    captures it if the browser's return has not (the payment row tells) — see
    paypal_orders.orders_awaiting_capture."""
    order = resource_of(event)
    if not order.get("id"):
        raise PermanentError("approved order has no id")
    unit = (order.get("purchase_units") or [{}])[0] or {}
    account_id, _ = paypal_orders.parse_custom_id(unit.get("custom_id"))
    remember_email(ensure_account(session, account_id), (order.get("payer") or {}).get("email_address"))
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
    capture = paypal_orders.CaptureResult.from_capture(resource_of(event))
    if capture.status == "UNKNOWN":
        # A payload without a status: the event type says it.
        capture = replace(capture, status=event.type.rsplit(".", 1)[-1])
    paypal_orders.grant_capture(session, outcome, capture, at=now, source_event_id=event.id)
    outcome.touched(paypal_orders.parse_custom_id(capture.custom_id)[0])


@handles(PROVIDER, "PAYMENT.CAPTURE.REFUNDED")
def capture_refunded(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    """Take back the refunded share of the order's credits. The resource is the refund; its
    capture is the `up` link, and `seller_payable_breakdown.total_refunded_amount` is cumulative."""
    refund = resource_of(event)
    capture_id = _refunded_capture_id(refund)
    if not capture_id:
        raise PermanentError(f"refund {refund.get('id')} names no capture")
    found = payments.find_payment_by_charge_ref(session, PROVIDER, capture_id, lock=False)
    if found is None:
        raise RetryLater(f"no payment known yet for capture {capture_id}")
    account, payment = lock_for_payment(session, outcome, found)
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
    refund = resource_of(event)
    sale_id = _refunded_sale_id(refund)
    if not sale_id:
        raise PermanentError(f"refund {refund.get('id')} names no sale")
    found = payments.find_payment(session, PROVIDER, sale_id)
    if found is None:
        raise RetryLater(f"no payment known yet for sale {sale_id}")
    account, payment = lock_for_payment(session, outcome, found)
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
