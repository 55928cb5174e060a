"""Checkout Sessions: subscription activation and credit package purchases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import ledger, notifications, payments, subscriptions
from shared.billing.accounts import ensure_account, link_stripe_customer
from shared.billing.subscriptions import SubscriptionChange
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import Account, CreditPackage, WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import (
    PROVIDER,
    data_object,
    event_at,
    expandable_id,
    initial_period_key,
    metadata,
    plan_by_id,
)


@handles(PROVIDER, "checkout.session.completed")
def checkout_session_completed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    checkout = data_object(event)
    account = _checkout_account(session, outcome, checkout)
    if checkout.get("mode") == "subscription":
        _activate_subscription(session, outcome, event, checkout, account.id, now)
    elif checkout.get("mode") == "payment" and checkout.get("payment_status") in ("paid", "no_payment_required"):
        _grant_package_purchase(session, outcome, event, checkout, account.id, now)
    # mode payment and unpaid: wait for checkout.session.async_payment_succeeded / _failed.


@handles(PROVIDER, "checkout.session.async_payment_succeeded")
def checkout_async_payment_succeeded(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    checkout = data_object(event)
    account = _checkout_account(session, outcome, checkout)
    if checkout.get("mode") == "payment":
        _grant_package_purchase(session, outcome, event, checkout, account.id, now)


@handles(PROVIDER, "checkout.session.async_payment_failed")
def checkout_async_payment_failed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    checkout = data_object(event)
    account = _checkout_account(session, outcome, checkout)
    package = _package_for_checkout(session, checkout)
    payment, _ = payments.record_payment(
        session,
        outcome,
        payments.PaymentRecord(
            account_id=account.id,
            provider=PROVIDER,
            provider_payment_id=checkout["id"],
            provider_charge_ref=expandable_id(checkout.get("payment_intent")),
            kind="credit_package",
            status=payments.FAILED,
            amount_cents=checkout.get("amount_total") or package.price_cents,
            currency=checkout.get("currency") or package.currency,
            package_id=package.id,
            failure_message="asynchronous payment failed",
        ),
        at=now,
    )
    if payment.status == payments.FAILED:  # not when its success was seen first
        notifications.payment_failed(
            session,
            outcome,
            account_id=account.id,
            provider=PROVIDER,
            reference=checkout["id"],
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            description=f"{package.name} credit package",
            reason="The payment could not be completed.",
            at=now,
        )


def _checkout_account(session: Session, outcome: Outcome, checkout: dict) -> Account:
    account_id = metadata(checkout).get("account_id") or checkout.get("client_reference_id")
    if not account_id:
        raise PermanentError(f"checkout session {checkout.get('id')} names no account (metadata.account_id)")
    details = checkout.get("customer_details") or {}
    account = ensure_account(
        session, account_id, email=details.get("email") or checkout.get("customer_email"), name=details.get("name")
    )
    link_stripe_customer(session, account, expandable_id(checkout.get("customer")))
    outcome.touched(account.id)
    return account


def _activate_subscription(
    session: Session, outcome: Outcome, event: WebhookEvent, checkout: dict, account_id: str, now: datetime
) -> None:
    subscription_id = expandable_id(checkout.get("subscription"))
    if not subscription_id:
        raise PermanentError(f"subscription checkout {checkout.get('id')} has no subscription")
    plan = plan_by_id(session, metadata(checkout).get("plan_id"))
    subscription = subscriptions.lock_or_create_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=account_id
    )
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(status=subscriptions.ACTIVE, plan_id=plan.id if plan else None),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    plan = plan or plan_by_id(session, subscription.plan_id)
    if plan is None:
        raise RetryLater(f"plan of subscription {subscription_id} not known yet")
    subscriptions.grant_period_credits(
        session,
        outcome,
        subscription,
        plan,
        idempotency_key=initial_period_key(subscription_id),
        at=now,
        source_event_id=event.id,
    )
    notifications.subscription_activated(session, outcome, subscription, plan)


def _grant_package_purchase(
    session: Session, outcome: Outcome, event: WebhookEvent, checkout: dict, account_id: str, now: datetime
) -> None:
    package = _package_for_checkout(session, checkout)
    amount_total = checkout.get("amount_total")
    payment, _ = payments.record_payment(
        session,
        outcome,
        payments.PaymentRecord(
            account_id=account_id,
            provider=PROVIDER,
            provider_payment_id=checkout["id"],
            provider_charge_ref=expandable_id(checkout.get("payment_intent")),
            kind="credit_package",
            amount_cents=amount_total if amount_total is not None else package.price_cents,
            currency=checkout.get("currency") or package.currency,
            package_id=package.id,
            provider_invoice_id=expandable_id(checkout.get("invoice")),
            line_items=[
                {
                    "description": f"{package.name} credit package ({package.credits} credits)",
                    "amount_cents": package.price_cents,
                    "quantity": 1,
                }
            ],
            credits_granted=package.credits,
        ),
        at=now,
    )
    ledger.grant_credits(
        session,
        outcome,
        account_id=account_id,
        credits=package.credits,
        kind=ledger.GRANT_PURCHASE,
        description=f"{package.name} credit package",
        idempotency_key=f"stripe:checkout:{checkout['id']}",
        at=now,
        payment_id=payment.id,
        source_event_id=event.id,
    )
    notifications.payment_confirmation(
        session, outcome, payment, description=f"{package.name} credit package", credits=package.credits
    )


def _package_for_checkout(session: Session, checkout: dict) -> CreditPackage:
    package_id = metadata(checkout).get("package_id")
    package = session.get(CreditPackage, package_id) if package_id else None
    if package is None:
        raise PermanentError(f"checkout session {checkout.get('id')} names no known credit package")
    return package
