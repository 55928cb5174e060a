"""What a PayPal order or subscription means to billhook, in one place for the checkout API and
the webhook handlers alike.

**custom_id** — billhook sets PayPal's `custom_id` (purchase unit of an order, or the
subscription) to `"<account_id>:<item_id>"`: the account, and the credit package (orders) or plan
(subscriptions). Build it with `order_custom_id` / `subscription_custom_id`, read it with
`parse_custom_id`. PayPal keeps at most 127 characters; item ids never contain ':' (the account id
may: it is everything before the last ':').

**one grant per order** — the credits of an order are granted under `grant_key(order_id)` by
`grant_capture`, whoever calls it first: the capture endpoint with the capture response
(`CaptureResult.from_order`), or the PAYMENT.CAPTURE.COMPLETED handler with the webhook resource
(`CaptureResult.from_capture`). The payment row is keyed by the order id, so there is one payment
and one invoice per order too.

**one capture per order** — every capture call for an order carries the same PayPal-Request-Id,
`capture_request_id(order_id)`: PayPal answers a repeat with the first capture's result.

**money** — a completed capture grants only when its amount is readable and equal, in the same
currency, to what billhook created the order for (the package's price). Anything else raises
`PaymentMismatch`: the event fails naming expected and got, grants and records nothing, and
`billhook_payment_mismatch_total{provider="paypal"}` counts it (docs/operating.md: what ops do).

**emails** — `grant_capture` queues the order's payment_confirmation (or payment_failed) in the
caller's transaction, keyed by the order (shared.billing.notifications), so whichever caller grants, the
buyer gets one. Callers outside a webhook handler publish the queued ids after their commit
(its `Outcome`, then `shared.handoff`); the worker does it for handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import handoff
from shared.billing import ledger, notifications, payments
from shared.billing.accounts import ensure_account
from shared.config import Settings
from shared.errors import PermanentError
from shared.logs import log_line
from shared.models import CreditPackage, Payment, WebhookEvent
from shared.models.events import EventStatus
from shared.outcome import Outcome
from shared.paypal.captures import CaptureResult, check_amount
from shared.paypal.client import PROVIDER, PayPalError, PayPalGateway

log = logging.getLogger("billhook.paypal")

MAX_CUSTOM_ID_LENGTH = 127
COMPLETED = "COMPLETED"
PENDING = "PENDING"
# Capture statuses that end the payment without money (Orders v2 capture.status).
FAILED_CAPTURE_STATUSES = ("DECLINED", "DENIED", "FAILED")


# -- custom_id --------------------------------------------------------------------------------


def order_custom_id(account_id: str, package_id: str) -> str:
    return _custom_id(account_id, package_id)


def subscription_custom_id(account_id: str, plan_id: str) -> str:
    return _custom_id(account_id, plan_id)


def _custom_id(account_id: str, item_id: str) -> str:
    if not account_id or not item_id or ":" in item_id:
        raise ValueError("custom_id needs an account id and an item id without ':'")
    value = f"{account_id}:{item_id}"
    if len(value) > MAX_CUSTOM_ID_LENGTH:
        raise ValueError(f"custom_id longer than PayPal's {MAX_CUSTOM_ID_LENGTH} characters")
    return value


def parse_custom_id(value: str | None) -> tuple[str, str]:
    """(account_id, item_id) from a custom_id billhook set; PermanentError for anything else
    (retrying cannot make a foreign custom_id ours)."""
    if not isinstance(value, str) or ":" not in value:
        raise PermanentError("PayPal custom_id is not billhook's '<account_id>:<item_id>'")
    account_id, item_id = value.rsplit(":", 1)
    if not account_id or not item_id:
        raise PermanentError("PayPal custom_id is not billhook's '<account_id>:<item_id>'")
    return account_id, item_id


# -- keys -------------------------------------------------------------------------------------


def capture_request_id(order_id: str) -> str:
    """The PayPal-Request-Id of every capture of this order (endpoint and webhook task alike)."""
    return f"billhook-capture-{order_id}"


def grant_key(order_id: str) -> str:
    """The ledger idempotency key of an order's credits."""
    return f"paypal:order:{order_id}"


# -- captures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureGrant:
    payment: Payment | None  # None when there was no capture to record
    credits_granted_now: int  # 0 when another caller already granted (or nothing is owed)
    status: str  # the payment's status: succeeded | failed | pending (| refunded, ... if it was)


def grant_capture(
    session: Session, outcome: Outcome, capture: CaptureResult, *, at: datetime, source_event_id: int | None = None
) -> CaptureGrant:
    """Record the order's payment (and invoice) and grant its package's credits, once per order,
    whoever calls first. A completed capture after a denied one wins; a denial after completion
    changes nothing. A pending capture is recorded as pending and waits for
    PAYMENT.CAPTURE.COMPLETED. An order without a capture changes nothing (payment None)."""
    if not capture.order_id:
        raise PermanentError("PayPal capture names no order")
    account_id, package_id = parse_custom_id(capture.custom_id)
    package = session.get(CreditPackage, package_id)
    if package is None:
        raise PermanentError(f"PayPal order {capture.order_id} names unknown credit package {package_id!r}")
    if capture.status == COMPLETED:
        return _grant_completed(session, outcome, capture, account_id, package, at, source_event_id)
    if capture.status in FAILED_CAPTURE_STATUSES:
        payment = _record(session, outcome, capture, account_id, package, at, status=payments.FAILED)
        if payment.status == payments.PENDING:
            payment.status = payments.FAILED
            payment.failure_message = _failure_message(capture)
        if payment.status == payments.FAILED:  # not when its completion was seen first
            notifications.payment_failed(
                session,
                outcome,
                account_id=account_id,
                provider=PROVIDER,
                reference=capture.order_id,
                amount_cents=payment.amount_cents,
                currency=payment.currency,
                description=f"{package.name} credit package",
                reason="PayPal did not complete the payment.",
                at=at,
            )
        return CaptureGrant(payment, 0, payment.status)
    if capture.status == PENDING:
        # e.g. an eCheck or a review: kept so nothing captures it again; COMPLETED follows.
        payment = _record(session, outcome, capture, account_id, package, at, status=payments.PENDING)
        return CaptureGrant(payment, 0, payment.status)
    return CaptureGrant(None, 0, "not_captured")


def _grant_completed(
    session: Session,
    outcome: Outcome,
    capture: CaptureResult,
    account_id: str,
    package: CreditPackage,
    at: datetime,
    source_event_id: int | None,
) -> CaptureGrant:
    check_amount(capture, package)
    # A denied or pending capture recorded first is overtaken by this completed one (record_payment).
    payment = _record(session, outcome, capture, account_id, package, at, status=payments.SUCCEEDED)
    payment.credits_granted = package.credits
    granted = ledger.grant_credits(
        session,
        outcome,
        account_id=account_id,
        credits=package.credits,
        kind=ledger.GRANT_PURCHASE,
        description=f"{package.name} credit package",
        idempotency_key=grant_key(capture.order_id),
        at=at,
        payment_id=payment.id,
        source_event_id=source_event_id,
    )
    notifications.payment_confirmation(
        session, outcome, payment, description=f"{package.name} credit package", credits=package.credits
    )
    return CaptureGrant(payment, package.credits if granted else 0, payment.status)


def _record(
    session: Session,
    outcome: Outcome,
    capture: CaptureResult,
    account_id: str,
    package: CreditPackage,
    at: datetime,
    *,
    status: str,
) -> Payment:
    ensure_account(session, account_id)
    payment, _ = payments.record_payment(session, outcome, _payment_record(capture, account_id, package, status), at=at)
    return payment


def _payment_record(
    capture: CaptureResult, account_id: str, package: CreditPackage, status: str
) -> payments.PaymentRecord:
    return payments.PaymentRecord(
        account_id=account_id,
        provider=PROVIDER,
        provider_payment_id=capture.order_id,
        provider_charge_ref=capture.capture_id,
        kind="credit_package",
        status=status,
        amount_cents=capture.amount_cents if capture.amount_cents is not None else package.price_cents,
        currency=capture.currency or package.currency,
        package_id=package.id,
        provider_invoice_id=capture.order_id,
        line_items=_line_items(package),
        failure_message=None if status == payments.SUCCEEDED else _failure_message(capture),
    )


def _line_items(package: CreditPackage) -> list[dict]:
    return [
        {
            "description": f"{package.name} credit package ({package.credits} credits)",
            "amount_cents": package.price_cents,
            "quantity": 1,
        }
    ]


def _failure_message(capture: CaptureResult) -> str:
    reason = f": {capture.failure_reason}" if capture.failure_reason else ""
    return f"PayPal capture {capture.status.lower()}{reason}"


# -- capturing approved orders the browser did not come back for --------------------------------

APPROVED_EVENT = "CHECKOUT.ORDER.APPROVED"
ALREADY_CAPTURED = "ORDER_ALREADY_CAPTURED"


def orders_awaiting_capture(
    session: Session, *, now: datetime, grace_seconds: float, window_seconds: float, limit: int = 200
) -> list[int]:
    """Ids of handled CHECKOUT.ORDER.APPROVED events whose order has no payment row yet: approved
    longer than `grace_seconds` ago (the browser's return normally captures first) and not longer
    than `window_seconds` (PayPal lets approved orders expire). The handled event is the durable
    record of the intent to capture; the payment row, written by whoever captures, ends it."""
    stmt = (
        select(WebhookEvent.id, WebhookEvent.payload)
        .where(
            WebhookEvent.provider == PROVIDER,
            WebhookEvent.type == APPROVED_EVENT,
            WebhookEvent.status == EventStatus.SUCCEEDED,
            WebhookEvent.received_at <= now - timedelta(seconds=grace_seconds),
            WebhookEvent.received_at >= now - timedelta(seconds=window_seconds),
        )
        .order_by(WebhookEvent.id)
        .limit(limit)
    )
    candidates = {pk: _order_id(payload) for pk, payload in session.execute(stmt)}
    order_ids = {o for o in candidates.values() if o}
    if not order_ids:
        return []
    recorded = set(
        session.scalars(
            select(Payment.provider_payment_id).where(
                Payment.provider == PROVIDER, Payment.provider_payment_id.in_(order_ids)
            )
        )
    )
    seen: set[str] = set()
    due = []
    for pk, order_id in candidates.items():
        if order_id and order_id not in recorded and order_id not in seen:
            seen.add(order_id)
            due.append(pk)
    return due


def capture_approved_order(
    session_factory: sessionmaker[Session],
    settings: Settings,
    event_pk: int,
    *,
    clock: Callable[[], datetime],
    enqueue_email: Callable[[int], None] | None = None,
    enqueue_delivery: Callable[[int], None] | None = None,
) -> str:
    """Capture the order of an APPROVED event and grant it, unless its payment is recorded already.

    The PayPal call happens outside any transaction; the capture carries the order's one
    PayPal-Request-Id, so a concurrent capture from the browser return is the same capture, and
    `grant_capture` grants once whichever records first. Raises PayPalError when retrying may
    help (the caller tries again later); a refusal that retrying cannot change is recorded as a
    failed payment, which ends the attempts. Returns the payment's status, or why nothing was done.
    `enqueue_email` publishes the emails the grant queued once it has committed (without it the
    outbox sweep finds them); `enqueue_delivery` the outgoing deliveries likewise.
    """
    with session_factory() as session:
        event = session.get(WebhookEvent, event_pk)
        if event is None or event.provider != PROVIDER or event.type != APPROVED_EVENT:
            return "not_an_approved_order"
        order = (event.payload or {}).get("resource") or {}
        order_id = order.get("id")
        if not order_id:
            return "not_an_approved_order"
        if payments.find_payment(session, PROVIDER, order_id) is not None:
            return "already_recorded"
        client = PayPalGateway.from_store(session, settings)
    approved = CaptureResult.from_order(order)
    try:
        captured = CaptureResult.from_order(client.capture_order(order_id, request_id=capture_request_id(order_id)))
    except PayPalError as exc:
        if exc.issue == ALREADY_CAPTURED:
            captured = CaptureResult.from_order(client.get_order(order_id))
        elif exc.retryable:
            raise
        else:
            captured = replace(approved, status="FAILED", failure_reason=exc.issue or exc.name or f"HTTP {exc.status}")
    if not captured.custom_id or captured.amount_cents is None:
        captured = replace(
            captured,
            custom_id=captured.custom_id or approved.custom_id,
            amount_cents=captured.amount_cents if captured.amount_cents is not None else approved.amount_cents,
            currency=captured.currency or approved.currency,
            amount_value=captured.amount_value if captured.amount_cents is not None else approved.amount_value,
        )
    outcome = Outcome()
    with session_factory.begin() as session:
        status = grant_capture(session, outcome, captured, at=clock(), source_event_id=event_pk).status
    if enqueue_email is not None:
        handoff.hand_over(enqueue_email, outcome.emails, what="email")  # the grant and its email have committed
    if enqueue_delivery is not None:
        handoff.hand_over(enqueue_delivery, outcome.deliveries, what="delivery")
    log_line(log, "paypal capture", order=order_id, outcome=status)
    return status


def _order_id(payload: dict | None) -> str | None:
    resource = (payload or {}).get("resource") or {}
    order_id = resource.get("id")
    return order_id if isinstance(order_id, str) else None
