"""SCA / 3-D Secure: an invoice whose payment needs the customer to authenticate. The customer
is emailed the invoice's hosted page, once per invoice; the subscription's status is left to
Stripe's own subscription events (it reports `incomplete` or `past_due` there)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import notifications
from shared.billing.accounts import account_for_stripe_customer, lock_account
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import (
    PROVIDER,
    data_object,
    expandable_id,
    invoice_metadata,
    lock_subscription_for,
    plan_by_id,
)


@handles(PROVIDER, "invoice.payment_action_required")
def invoice_payment_action_required(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    invoice = data_object(event)
    invoice_id = invoice.get("id")
    url = invoice.get("hosted_invoice_url")
    if not invoice_id or not isinstance(url, str) or not url.startswith("https://"):
        raise PermanentError("an invoice needing action must carry its id and an https hosted_invoice_url")
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription_id = expandable_id(details.get("subscription"))
    plan = None
    if subscription_id is not None:
        subscription = lock_subscription_for(session, outcome, subscription_id, invoice)
        account_id = subscription.account_id
        plan = plan_by_id(session, invoice_metadata(invoice).get("plan_id") or subscription.plan_id)
    else:
        known = account_for_stripe_customer(session, expandable_id(invoice.get("customer")))
        if known is None:
            raise RetryLater(f"no account known yet for invoice {invoice_id}")
        account_id = known.id
        lock_account(session, account_id)
        outcome.touched(account_id)
    notifications.payment_action_required(
        session,
        outcome,
        account_id=account_id,
        provider=PROVIDER,
        reference=invoice_id,
        amount_cents=invoice.get("amount_due") or 0,
        currency=invoice.get("currency") or "usd",
        description=f"{plan.name} plan" if plan else "Your subscription",
        action_url=url,
    )
