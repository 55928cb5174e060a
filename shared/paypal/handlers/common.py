"""What the PayPal handlers share: reading the event, its time, and the subscription and plan it
names. Lock order, as everywhere: account, then subscription, then payment
(shared.billing.accounts.ensure_account)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.billing import payments, subscriptions
from shared.billing.accounts import ensure_account, lock_account
from shared.errors import PermanentError
from shared.models import Account, Payment, Plan, Subscription, WebhookEvent
from shared.outcome import Outcome
from shared.paypal import orders as paypal_orders
from shared.paypal.client import PROVIDER


def resource_of(event: WebhookEvent) -> dict:
    resource = (event.payload or {}).get("resource")
    if not isinstance(resource, dict):
        raise PermanentError("event has no resource")
    return resource


def event_at(event: WebhookEvent) -> datetime:
    return event.event_created_at or event.received_at


def parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def lock_from_resource(session: Session, outcome: Outcome, resource: dict) -> tuple[Subscription, Plan | None]:
    """The subscription row (created on first sight) for the account billhook put in custom_id;
    a row already known keeps its account."""
    subscription_id = resource.get("id")
    if not subscription_id:
        raise PermanentError("subscription event has no subscription id")
    existing = subscriptions.find_subscription(session, PROVIDER, subscription_id)
    plan = plan_for(session, resource)
    if existing is not None:
        account_id = existing.account_id
    else:
        account_id, _ = paypal_orders.parse_custom_id(resource.get("custom_id"))
    account = ensure_account(session, account_id)  # the account first: see ensure_account
    remember_email(account, (resource.get("subscriber") or {}).get("email_address"))
    outcome.touched(account_id)
    subscription = subscriptions.lock_or_create_subscription(
        session, provider=PROVIDER, provider_subscription_id=subscription_id, account_id=account_id
    )
    return subscription, plan


def plan_for(session: Session, resource: dict) -> Plan | None:
    paypal_plan_id = resource.get("plan_id")
    if paypal_plan_id:
        plan = session.scalars(select(Plan).filter_by(paypal_plan_id=paypal_plan_id)).one_or_none()
        if plan is not None:
            return plan
    custom_id = resource.get("custom_id")
    if isinstance(custom_id, str) and ":" in custom_id:
        return plan_by_id(session, custom_id.rsplit(":", 1)[1])
    return None


def plan_by_id(session: Session, plan_id: str | None) -> Plan | None:
    return session.get(Plan, plan_id) if plan_id else None


def initial_key(subscription_id: str) -> str:
    return f"paypal:subscription:{subscription_id}:initial"


def remember_email(account: Account, email: str | None) -> None:
    """The PayPal buyer's address, for the emails, only when billhook knows none: the main app's
    address for the account wins over the PayPal login's."""
    if isinstance(email, str) and email and not account.email:
        account.email = email


def lock_for_payment(session: Session, outcome: Outcome, found: Payment) -> tuple[Account, Payment]:
    """Lock what a payment's refund or dispute changes: the account, then the payment's
    subscription (a sale's), then the payment itself."""
    outcome.touched(found.account_id)
    account = lock_account(session, found.account_id)
    subscription = session.get(Subscription, found.subscription_id) if found.subscription_id else None
    if subscription is not None:
        subscriptions.lock_or_create_subscription(
            session,
            provider=subscription.provider,
            provider_subscription_id=subscription.provider_subscription_id,
            account_id=subscription.account_id,
        )
    return account, payments.find_payment(session, PROVIDER, found.provider_payment_id, lock=True)
