"""Refunds: take back the credits the refunded share of a payment granted, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import payments, refunds
from shared.billing.accounts import lock_account
from shared.errors import RetryLater
from shared.inbox.registry import handles
from shared.models import WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import PROVIDER, data_object, expandable_id


@handles(PROVIDER, "charge.refunded")
def charge_refunded(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    charge = data_object(event)
    refs = [r for r in (expandable_id(charge.get("payment_intent")), charge.get("id")) if r]
    found = next(
        (p for r in refs if (p := payments.find_payment_by_charge_ref(session, PROVIDER, r, lock=False))), None
    )
    if found is None:
        raise RetryLater(f"no payment known yet for charge {charge.get('id')}")
    outcome.touched(found.account_id)
    # Lock order: the account (its balance before and after the reversal), then the payment.
    account = lock_account(session, found.account_id)
    payment = payments.find_payment(session, PROVIDER, found.provider_payment_id, lock=True)
    amount_refunded = charge.get("amount_refunded") or 0
    refunds.reverse_refunded_credits(
        session,
        outcome,
        account,
        payment,
        amount_refunded_cents=amount_refunded,
        idempotency_key=f"stripe:refund:{charge['id']}:{amount_refunded}",
        at=now,
        source_event_id=event.id,
    )
