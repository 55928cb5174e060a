"""An operator's cancellation of a Stripe subscription now (`billhook subscriptions cancel`), with
a refund of its latest paid payment on request: a duplicate subscription's way out.

Only Stripe is asked: billhook's store changes when Stripe's customer.subscription.deleted and
charge.refunded arrive, through the same handlers as every other cancellation and refund. Running
it again is safe: a subscription Stripe already ended is not canceled twice, and the refund carries
an idempotency key per payment, so Stripe answers a repeat with the first refund.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.billing import payments
from shared.billing.subscriptions import TERMINAL_STATUSES, find_subscription
from shared.config import Settings
from shared.errors import BillhookError
from shared.models import Payment, Subscription
from shared.stripe.client import PROVIDER, StripeGateway


class CannotCancel(BillhookError):
    """The subscription is unknown, not Stripe's, or has no payment to refund: nothing was asked."""


@dataclass(frozen=True)
class PaymentToRefund:
    provider_payment_id: str
    charge_ref: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class Cancellation:
    subscription_id: str
    account_id: str
    status: str  # Stripe's, after the call
    already_ended: bool
    refund: dict | None  # Stripe's refund object
    refunded_payment: PaymentToRefund | None


def cancel_now(
    session_factory: sessionmaker[Session],
    settings: Settings,
    subscription_id: str,
    *,
    refund: bool,
    gateway: StripeGateway | None = None,
) -> Cancellation:
    """Cancel the Stripe subscription at once and, with `refund`, refund its latest paid payment
    in full. Raises CannotCancel before calling Stripe when it cannot be done, and ProviderError
    (ProviderTimeout) when Stripe refuses or does not answer."""
    with session_factory() as session:
        subscription = _stripe_subscription(session, subscription_id)
        account_id = subscription.account_id
        to_refund = _latest_paid_payment(session, subscription) if refund else None
        gateway = gateway or StripeGateway.from_store(session, settings)
    remote = gateway.retrieve_subscription(subscription_id)
    already_ended = remote.get("status") in TERMINAL_STATUSES
    if not already_ended:
        remote = gateway.cancel_subscription_now(subscription_id)
    refunded = None
    if to_refund is not None:
        refunded = gateway.refund(
            to_refund.charge_ref, idempotency_key=f"billhook:refund:{PROVIDER}:{to_refund.provider_payment_id}"
        )
    return Cancellation(subscription_id, account_id, remote.get("status"), already_ended, refunded, to_refund)


def _stripe_subscription(session: Session, subscription_id: str) -> Subscription:
    subscription = find_subscription(session, PROVIDER, subscription_id)
    if subscription is not None:
        return subscription
    other = session.scalars(select(Subscription).filter_by(provider_subscription_id=subscription_id)).first()
    if other is not None:
        raise CannotCancel(
            f"subscription {subscription_id} is billed through {other.provider}, not Stripe: cancel it there"
        )
    raise CannotCancel(f"no subscription {subscription_id!r} (give Stripe's id, sub_...)")


def _latest_paid_payment(session: Session, subscription: Subscription) -> PaymentToRefund:
    stmt = (
        select(Payment)
        .where(Payment.subscription_id == subscription.id, Payment.status != payments.FAILED)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(1)
    )
    payment = session.scalars(stmt).first()
    name = subscription.provider_subscription_id
    if payment is None or payment.status not in (payments.SUCCEEDED, payments.PARTIALLY_REFUNDED):
        why = (
            f"subscription {name} has no paid payment"
            if payment is None
            else f"the latest payment of subscription {name} ({payment.provider_payment_id}) is {payment.status}"
        )
        raise CannotCancel(f"{why}: nothing to refund (run it without --refund)")
    if not payment.provider_charge_ref:
        raise CannotCancel(
            f"payment {payment.provider_payment_id} of subscription {name} names no PaymentIntent yet"
            " (its invoice_payment.paid has not arrived): try again later, or refund it in Stripe's Dashboard"
        )
    return PaymentToRefund(
        payment.provider_payment_id, payment.provider_charge_ref, payment.amount_cents, payment.currency
    )
