"""Checkout Sessions: subscription activation and credit package purchases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared import metrics
from shared.billing import duplicates, ledger, notifications, payments, subscriptions
from shared.billing.accounts import ensure_account, link_stripe_customer
from shared.billing.subscriptions import SubscriptionChange, SubscriptionStatus
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
    ts,
)
from shared.stripe.handlers.trials import trial_days


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
    # Stripe's `created`, when the session's subscription is expanded: it orders duplicates.
    expanded = checkout.get("subscription")
    created_at = ts(expanded.get("created")) if isinstance(expanded, dict) else None
    if checkout.get("payment_status") not in ("paid", "no_payment_required"):
        # A first payment still on its way (a bank debit): Stripe keeps the subscription
        # incomplete until it is paid, and its invoice.paid activates it and grants the period.
        if subscription.plan_id is None and plan is not None:
            subscription.plan_id = plan.id
        duplicates.settle(session, outcome, subscription, created_at=created_at, at=now, source_event_id=event.id)
        return
    trial = trial_days(metadata(checkout)) > 0 and checkout.get("payment_status") == "no_payment_required"
    subscriptions.apply_subscription_state(
        session,
        outcome,
        subscription,
        SubscriptionChange(
            status=SubscriptionStatus.TRIALING if trial else subscriptions.ACTIVE, plan_id=plan.id if plan else None
        ),
        event_at=event_at(event),
        event_id=event.event_id,
        now=now,
    )
    duplicate = duplicates.settle(
        session, outcome, subscription, created_at=created_at, at=now, source_event_id=event.id
    )
    if trial or duplicate:
        # A trial paid nothing: the first paid invoice after it grants the first period. A
        # duplicate grants nothing and is not announced as the account's plan.
        return
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
    amount_total = _checked_amount(checkout, package)
    payment, _ = payments.record_payment(
        session,
        outcome,
        payments.PaymentRecord(
            account_id=account_id,
            provider=PROVIDER,
            provider_payment_id=checkout["id"],
            provider_charge_ref=expandable_id(checkout.get("payment_intent")),
            kind="credit_package",
            amount_cents=amount_total,
            currency=checkout["currency"],
            package_id=package.id,
            provider_invoice_id=expandable_id(checkout.get("invoice")),
            line_items=[
                {
                    "description": f"{package.name} credit package ({package.credits} credits)",
                    "amount_cents": amount_total - _adjustment_total(checkout),
                    "quantity": 1,
                },
                *_adjustment_lines(checkout),
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


def _adjustment_lines(checkout: dict) -> list[dict]:
    """A promotion code's discount and the tax, as lines of the payment's invoice (its lines add
    up to what was paid)."""
    totals = checkout.get("total_details") or {}
    lines = []
    if totals.get("amount_discount"):
        lines.append({"description": "Discount", "amount_cents": -totals["amount_discount"], "quantity": 1})
    if totals.get("amount_tax"):
        lines.append({"description": "Tax", "amount_cents": totals["amount_tax"], "quantity": 1})
    return lines


def _adjustment_total(checkout: dict) -> int:
    return sum(line["amount_cents"] for line in _adjustment_lines(checkout))


def _package_for_checkout(session: Session, checkout: dict) -> CreditPackage:
    package_id = metadata(checkout).get("package_id")
    package = session.get(CreditPackage, package_id) if package_id else None
    if package is None:
        raise PermanentError(f"checkout session {checkout.get('id')} names no known credit package")
    return package


def _checked_amount(checkout: dict, package: CreditPackage) -> int:
    """The amount paid, once it is what billhook created the session for: the package's price at
    creation (its metadata; the current price for sessions created without it), less the discount,
    plus the tax, in the session's currency, and paid (or free by a full discount). Anything else
    grants nothing: the event fails naming what was expected and what came."""
    meta = metadata(checkout)
    currency = str(meta.get("currency") or package.currency).lower()
    price = _cents(meta.get("price_cents"))
    price = package.price_cents if price is None else price
    totals = checkout.get("total_details") or {}
    discount = _cents(totals.get("amount_discount") or 0)
    tax = _cents(totals.get("amount_tax") or 0)
    got = checkout.get("amount_total")
    status = checkout.get("payment_status")
    expected = None if discount is None or tax is None else price - discount + tax
    fully_discounted = expected == 0 and discount == price
    ok = (
        expected is not None
        and type(got) is int  # noqa: E721 - a JSON number, not a bool or a string of digits
        and got == expected
        and str(checkout.get("currency") or "").lower() == currency
        and (status == "paid" or (status == "no_payment_required" and fully_discounted))
    )
    if not ok:
        metrics.record_payment_mismatch(PROVIDER)
        raise PermanentError(
            f"checkout session {checkout.get('id')} for package {package.id}: expected {expected} {currency} "
            f"(price {price} - discount {totals.get('amount_discount') or 0} + tax {totals.get('amount_tax') or 0}), "
            f"paid; got {got!r} {checkout.get('currency')!r}, payment_status {status!r}"
        )
    return got


def _cents(value: object) -> int | None:
    """A non-negative amount in minor units, from an int or (metadata) a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
