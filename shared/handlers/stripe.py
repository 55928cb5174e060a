"""Stripe event handlers, on the current API shapes: billing periods on
`items.data[].current_period_*`, an invoice's subscription on `parent.subscription_details`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import catalog, ledger, notifications, payments, subscriptions
from shared.accounts import account_for_stripe_customer, ensure_account, link_stripe_customer, lock_account
from shared.errors import PermanentError, RetryLater
from shared.handlers import handles
from shared.models import CreditPackage, Invoice, Plan, Subscription, WebhookEvent
from shared.subscriptions import SubscriptionChange

PROVIDER = "stripe"


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _object(event: WebhookEvent) -> dict:
    try:
        return event.payload["data"]["object"]
    except (KeyError, TypeError) as exc:
        raise PermanentError("event has no data.object") from exc


def _event_at(event: WebhookEvent) -> datetime:
    return event.event_created_at or event.received_at


def _metadata(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _id(value) -> str | None:
    """An expandable field: an id string, or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value


# -- checkout ---------------------------------------------------------------------------------


@handles(PROVIDER, "checkout.session.completed")
def checkout_session_completed(session: Session, event: WebhookEvent, now: datetime) -> None:
    checkout = _object(event)
    account = _checkout_account(session, event, checkout)
    if checkout.get("mode") == "subscription":
        _activate_from_checkout(session, event, checkout, account.id, now)
    elif checkout.get("mode") == "payment" and checkout.get("payment_status") in ("paid", "no_payment_required"):
        _grant_package_purchase(session, event, checkout, account.id, now)
    # mode payment and unpaid: wait for checkout.session.async_payment_succeeded / _failed.


@handles(PROVIDER, "checkout.session.async_payment_succeeded")
def checkout_async_payment_succeeded(session: Session, event: WebhookEvent, now: datetime) -> None:
    checkout = _object(event)
    account = _checkout_account(session, event, checkout)
    if checkout.get("mode") == "payment":
        _grant_package_purchase(session, event, checkout, account.id, now)


@handles(PROVIDER, "checkout.session.async_payment_failed")
def checkout_async_payment_failed(session: Session, event: WebhookEvent, now: datetime) -> None:
    checkout = _object(event)
    account = _checkout_account(session, event, checkout)
    package = _package_for_checkout(session, checkout)
    payment, _ = payments.record_payment(
        session,
        payments.PaymentRecord(
            account_id=account.id,
            provider=PROVIDER,
            provider_payment_id=checkout["id"],
            provider_charge_ref=_id(checkout.get("payment_intent")),
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
            account_id=account.id,
            provider=PROVIDER,
            reference=checkout["id"],
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            description=f"{package.name} credit package",
            reason="The payment could not be completed.",
        )


def _checkout_account(session: Session, event: WebhookEvent, checkout: dict):
    account_id = _metadata(checkout).get("account_id") or checkout.get("client_reference_id")
    if not account_id:
        raise PermanentError(f"checkout session {checkout.get('id')} names no account (metadata.account_id)")
    details = checkout.get("customer_details") or {}
    account = ensure_account(
        session, account_id, email=details.get("email") or checkout.get("customer_email"), name=details.get("name")
    )
    link_stripe_customer(session, account, _id(checkout.get("customer")))
    event.account_id = account.id
    return account


def _activate_from_checkout(
    session: Session, event: WebhookEvent, checkout: dict, account_id: str, now: datetime
) -> None:
    subscription_id = _id(checkout.get("subscription"))
    if not subscription_id:
        raise PermanentError(f"subscription checkout {checkout.get('id')} has no subscription")
    plan = _plan(session, _metadata(checkout).get("plan_id"))
    subscription = subscriptions.lock_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=account_id
    )
    subscriptions.apply_subscription_state(
        session,
        subscription,
        SubscriptionChange(status=subscriptions.ACTIVE, plan_id=plan.id if plan else None),
        event_at=_event_at(event),
        event_id=event.event_id,
    )
    plan = plan or _plan(session, subscription.plan_id)
    if plan is None:
        raise RetryLater(f"plan of subscription {subscription_id} not known yet")
    _grant_period_credits(session, event, subscription, plan, _initial_period_key(subscription_id), now)
    notifications.subscription_activated(session, subscription, plan)


def _grant_package_purchase(
    session: Session, event: WebhookEvent, checkout: dict, account_id: str, now: datetime
) -> None:
    package = _package_for_checkout(session, checkout)
    payment, _ = payments.record_payment(
        session,
        payments.PaymentRecord(
            account_id=account_id,
            provider=PROVIDER,
            provider_payment_id=checkout["id"],
            provider_charge_ref=_id(checkout.get("payment_intent")),
            kind="credit_package",
            amount_cents=checkout.get("amount_total")
            if checkout.get("amount_total") is not None
            else package.price_cents,
            currency=checkout.get("currency") or package.currency,
            package_id=package.id,
            provider_invoice_id=_id(checkout.get("invoice")),
            line_items=[
                {
                    "description": f"{package.name} credit package ({package.credits} credits)",
                    "amount_cents": package.price_cents,
                    "quantity": 1,
                }
            ],
        ),
        at=now,
    )
    payment.credits_granted = package.credits
    ledger.grant_credits(
        session,
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
        session, payment, description=f"{package.name} credit package", credits=package.credits
    )


def _package_for_checkout(session: Session, checkout: dict) -> CreditPackage:
    package_id = _metadata(checkout).get("package_id")
    package = session.get(CreditPackage, package_id) if package_id else None
    if package is None:
        raise PermanentError(f"checkout session {checkout.get('id')} names no known credit package")
    return package


def _plan(session: Session, plan_id: str | None) -> Plan | None:
    return session.get(Plan, plan_id) if plan_id else None


# -- invoices ---------------------------------------------------------------------------------


@handles(PROVIDER, "invoice.paid", "invoice.payment_succeeded")
def invoice_paid(session: Session, event: WebhookEvent, now: datetime) -> None:
    invoice = _object(event)
    subscription_id = _invoice_subscription_id(invoice)
    if subscription_id is None:
        return  # a one-off invoice: checkout payments are handled from their session
    subscription = _lock_subscription_for(session, event, subscription_id, invoice)
    line = _subscription_line(invoice)
    plan = _invoice_plan(session, invoice, line, subscription)
    period = (line or {}).get("period") or {}
    subscriptions.apply_subscription_state(
        session,
        subscription,
        SubscriptionChange(
            status=subscriptions.ACTIVE,
            plan_id=plan.id if plan else None,
            current_period_start=_ts(period.get("start")),
            current_period_end=_ts(period.get("end")),
        ),
        event_at=_event_at(event),
        event_id=event.event_id,
    )
    payment, _ = payments.record_payment(
        session,
        payments.PaymentRecord(
            account_id=subscription.account_id,
            provider=PROVIDER,
            provider_payment_id=invoice["id"],
            provider_charge_ref=_invoice_payment_intent(invoice),
            kind="subscription",
            amount_cents=invoice.get("amount_paid") or 0,
            currency=invoice.get("currency") or "usd",
            plan_id=plan.id if plan else None,
            subscription_id=subscription.id,
            provider_invoice_id=invoice["id"],
            line_items=[
                {"description": li.get("description"), "amount_cents": li.get("amount"), "quantity": li.get("quantity")}
                for li in (invoice.get("lines") or {}).get("data", [])
            ],
        ),
        at=now,
    )
    _invoice_paid_emails(session, invoice, subscription, plan, payment, period)
    key = _period_key(invoice, subscription_id, period)
    if key is None or plan is None:
        return  # a mid-period change (proration): paid, but no new period of credits
    payment.credits_granted = plan.included_credits
    _grant_period_credits(session, event, subscription, plan, key, now, payment_id=payment.id)


@handles(PROVIDER, "invoice.payment_failed")
def invoice_payment_failed(session: Session, event: WebhookEvent, now: datetime) -> None:
    invoice = _object(event)
    subscription_id = _invoice_subscription_id(invoice)
    if subscription_id is None:
        return
    subscription = _lock_subscription_for(session, event, subscription_id, invoice)
    subscriptions.apply_subscription_state(
        session,
        subscription,
        SubscriptionChange(status=subscriptions.PAST_DUE),
        event_at=_event_at(event),
        event_id=event.event_id,
    )
    paid = payments.find_payment(session, PROVIDER, invoice["id"])
    if paid is None or paid.status == payments.FAILED:  # a late failure of a paid invoice says nothing new
        _remember_customer(session, subscription.account_id, invoice)
        plan = _invoice_plan(session, invoice, _subscription_line(invoice), subscription)
        notifications.payment_failed(
            session,
            account_id=subscription.account_id,
            provider=PROVIDER,
            reference=invoice["id"],
            amount_cents=invoice.get("amount_due") or 0,
            currency=invoice.get("currency") or "usd",
            description=f"{plan.name} plan" if plan else "Your subscription",
        )


def _invoice_paid_emails(
    session: Session, invoice: dict, subscription: Subscription, plan: Plan | None, payment, period: dict
) -> None:
    """A first invoice activates and confirms; a renewal's email is its receipt; any other paid
    invoice (a mid-period upgrade) is confirmed."""
    _remember_customer(session, subscription.account_id, invoice)
    reason = invoice.get("billing_reason")
    if plan is not None and reason == "subscription_create":
        notifications.subscription_activated(session, subscription, plan)
    if plan is not None and reason == "subscription_cycle":
        notifications.subscription_renewal(session, subscription, plan, payment, period_end=_ts(period.get("end")))
        return
    notifications.payment_confirmation(
        session,
        payment,
        description=f"{plan.name} plan" if plan else "Subscription",
        credits=plan.included_credits if plan is not None and reason == "subscription_create" else None,
    )


def _remember_customer(session: Session, account_id: str, invoice: dict) -> None:
    """An invoice may come before its checkout: take the address it carries for the emails."""
    ensure_account(session, account_id, email=invoice.get("customer_email"), name=invoice.get("customer_name"))


@handles(PROVIDER, "invoice_payment.paid")
def invoice_payment_paid(session: Session, event: WebhookEvent, now: datetime) -> None:
    """Link an invoice's payment to its PaymentIntent. Since API 2025-03-31 an invoice no longer
    names its PaymentIntent (and `invoice.payments` is not in webhook payloads), and a refund names
    only the PaymentIntent: without this link a subscription payment's refund would never be matched."""
    invoice_payment = _object(event)
    intent = _id((invoice_payment.get("payment") or {}).get("payment_intent"))
    invoice_id = _id(invoice_payment.get("invoice"))
    if not intent or not invoice_id:
        return  # paid out of band or by another kind of payment: there is nothing a refund could name
    payment = payments.find_payment(session, PROVIDER, invoice_id, lock=True)
    if payment is None:
        if session.scalars(select(Invoice.id).filter_by(provider=PROVIDER, provider_invoice_id=invoice_id)).first():
            return  # a checkout's invoice: its payment already names the checkout's PaymentIntent
        raise RetryLater(f"invoice {invoice_id} not recorded yet")
    event.account_id = payment.account_id
    if payment.provider_charge_ref is None:
        payment.provider_charge_ref = intent


def _invoice_subscription_id(invoice: dict) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return _id(details.get("subscription"))


def _invoice_metadata(invoice: dict) -> dict:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("metadata") or {}


def _subscription_line(invoice: dict) -> dict | None:
    lines = (invoice.get("lines") or {}).get("data") or []
    for line in lines:
        parent = line.get("parent") or {}
        if parent.get("type") == "subscription_item_details" and not (
            parent.get("subscription_item_details") or {}
        ).get("proration"):
            return line
    return lines[0] if lines else None


def _line_price_id(line: dict | None) -> str | None:
    if not line:
        return None
    details = (line.get("pricing") or {}).get("price_details") or {}
    return _id(details.get("price"))


def _invoice_plan(session: Session, invoice: dict, line: dict | None, subscription: Subscription) -> Plan | None:
    return (
        catalog.plan_by_stripe_price(session, _line_price_id(line))
        or _plan(session, _invoice_metadata(invoice).get("plan_id"))
        or _plan(session, subscription.plan_id)
    )


def _invoice_payment_intent(invoice: dict) -> str | None:
    for item in (invoice.get("payments") or {}).get("data") or []:
        intent = _id((item.get("payment") or {}).get("payment_intent"))
        if intent:
            return intent
    return None


def _period_key(invoice: dict, subscription_id: str, period: dict) -> str | None:
    """One grant per billing period. The first invoice shares its key with the checkout
    completion, so whichever arrives first grants and the other finds the key taken."""
    reason = invoice.get("billing_reason")
    if reason == "subscription_create":
        return _initial_period_key(subscription_id)
    if reason == "subscription_cycle" and period.get("start"):
        return f"stripe:subscription:{subscription_id}:period:{period['start']}"
    return None


def _initial_period_key(subscription_id: str) -> str:
    return f"stripe:subscription:{subscription_id}:initial"


# -- subscriptions ----------------------------------------------------------------------------


@handles(PROVIDER, "customer.subscription.created", "customer.subscription.updated")
def subscription_updated(session: Session, event: WebhookEvent, now: datetime) -> None:
    stripe_subscription = _object(event)
    subscription = _lock_subscription_for(session, event, stripe_subscription["id"], stripe_subscription)
    item = ((stripe_subscription.get("items") or {}).get("data") or [{}])[0]
    plan = catalog.plan_by_stripe_price(session, _id((item.get("price") or {}).get("id")))
    subscriptions.apply_subscription_state(
        session,
        subscription,
        SubscriptionChange(
            status=stripe_subscription.get("status"),
            plan_id=plan.id if plan else _metadata(stripe_subscription).get("plan_id"),
            current_period_start=_ts(item.get("current_period_start")),
            current_period_end=_ts(item.get("current_period_end")),
            cancel_at_period_end=bool(stripe_subscription.get("cancel_at_period_end")),
            canceled_at=_ts(stripe_subscription.get("canceled_at")),
        ),
        event_at=_event_at(event),
        event_id=event.event_id,
    )


@handles(PROVIDER, "customer.subscription.deleted")
def subscription_deleted(session: Session, event: WebhookEvent, now: datetime) -> None:
    stripe_subscription = _object(event)
    subscription = _lock_subscription_for(session, event, stripe_subscription["id"], stripe_subscription)
    subscriptions.apply_subscription_state(
        session,
        subscription,
        SubscriptionChange(
            status=subscriptions.CANCELED,
            canceled_at=_ts(stripe_subscription.get("canceled_at") or stripe_subscription.get("ended_at"))
            or _event_at(event),
            cancel_at_period_end=False,
        ),
        event_at=_event_at(event),
        event_id=event.event_id,
    )


def _lock_subscription_for(session: Session, event: WebhookEvent, subscription_id: str, obj: dict) -> Subscription:
    """Find the account a subscription event belongs to, whatever order events came in: the
    subscription row, else the account id billhook put in the metadata, else the Stripe customer."""
    existing = subscriptions.find_subscription(session, PROVIDER, subscription_id)
    account_id = existing.account_id if existing else None
    metadata = _metadata(obj) if obj.get("object") == "subscription" else _invoice_metadata(obj)
    if account_id is None and metadata.get("account_id"):
        account_id = ensure_account(session, metadata["account_id"]).id
    if account_id is None:
        account = account_for_stripe_customer(session, _id(obj.get("customer")))
        account_id = account.id if account else None
    if account_id is None:
        raise RetryLater(f"no account known yet for subscription {subscription_id}")
    event.account_id = account_id
    return subscriptions.lock_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=account_id
    )


def _grant_period_credits(
    session: Session,
    event: WebhookEvent,
    subscription: Subscription,
    plan: Plan,
    key: str,
    now: datetime,
    payment_id: int | None = None,
) -> None:
    granted = ledger.grant_credits(
        session,
        account_id=subscription.account_id,
        credits=plan.included_credits,
        kind=ledger.GRANT_SUBSCRIPTION,
        description=f"{plan.name} plan credits",
        idempotency_key=key,
        at=now,
        payment_id=payment_id,
        source_event_id=event.id,
    )
    if not granted and payment_id is not None:
        # The checkout completion granted first; link its entry to the payment so a refund finds it.
        entry = ledger.entry_by_key(session, key)
        if entry is not None and entry.payment_id is None:
            entry.payment_id = payment_id


# -- refunds ----------------------------------------------------------------------------------


@handles(PROVIDER, "charge.refunded")
def charge_refunded(session: Session, event: WebhookEvent, now: datetime) -> None:
    charge = _object(event)
    refs = [r for r in (_id(charge.get("payment_intent")), charge.get("id")) if r]
    payment = next((p for r in refs if (p := payments.find_payment_by_charge_ref(session, PROVIDER, r))), None)
    if payment is None:
        raise RetryLater(f"no payment known yet for charge {charge.get('id')}")
    event.account_id = payment.account_id
    account = lock_account(session, payment.account_id)  # the balance before and after the reversal
    balance_before = ledger.balance(session, payment.account_id)
    refunded_before = payment.amount_refunded_cents
    key = f"stripe:refund:{charge['id']}:{charge.get('amount_refunded') or 0}"
    reversed_credits = payments.apply_refund(
        session,
        payment,
        amount_refunded_cents=charge.get("amount_refunded") or 0,
        idempotency_key=key,
        at=now,
        source_event_id=event.id,
    )
    invoice = payments.invoice_for_payment(session, payment.id)
    notifications.refund_notification(
        session,
        payment,
        refunded_before_cents=refunded_before,
        credits_reversed=reversed_credits,
        description=f"Invoice {invoice.number}" if invoice and invoice.number else "Your payment",
    )
    notifications.low_credits_if_crossed(
        session, account, before=balance_before, after=balance_before - reversed_credits, cause_key=key
    )
