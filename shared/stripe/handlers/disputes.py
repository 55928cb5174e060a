"""Disputes: the disputed share of a charge's credits taken back while the dispute is open or
lost, and given back when it is won (shared.billing.disputes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import disputes, payments
from shared.billing.accounts import lock_account
from shared.errors import PermanentError, RetryLater
from shared.inbox.registry import handles
from shared.models import WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import PROVIDER, data_object, event_at, expandable_id, ts

# Stripe's dispute statuses: `won` and `lost` decide; an inquiry that closes without becoming a
# chargeback (`warning_closed`) took no money, so it is read as won.
_DECIDED = {"won": disputes.WON, "lost": disputes.LOST, "warning_closed": disputes.WON}


@handles(PROVIDER, "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
def dispute_changed(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    dispute = data_object(event)
    dispute_id = dispute.get("id")
    if not dispute_id or dispute.get("object") not in (None, "dispute"):
        raise PermanentError("dispute event carries no dispute")
    status = dispute.get("status")
    amount = dispute.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise PermanentError(f"dispute {dispute_id} has no amount")
    if event.type == "charge.dispute.closed" and status not in _DECIDED:
        raise PermanentError(f"dispute {dispute_id} closed with unknown status {status!r}")
    refs = [r for r in (expandable_id(dispute.get("payment_intent")), expandable_id(dispute.get("charge"))) if r]
    found = next(
        (p for r in refs if (p := payments.find_payment_by_charge_ref(session, PROVIDER, r, lock=False))), None
    )
    if found is None:
        raise RetryLater(f"no payment known yet for dispute {dispute_id}")
    outcome.touched(found.account_id)
    # Lock order: the account (its balance), then the payment.
    account = lock_account(session, found.account_id)
    payment = payments.find_payment(session, PROVIDER, found.provider_payment_id, lock=True)
    disputes.apply_dispute(
        session,
        outcome,
        account,
        payment,
        disputes.DisputeReport(
            provider=PROVIDER,
            provider_dispute_id=dispute_id,
            state=_DECIDED.get(status, disputes.OPEN),
            amount_cents=amount,
            currency=dispute.get("currency") or payment.currency,
            provider_status=status,
            reason=dispute.get("reason"),
            opened_at=ts(dispute.get("created")),
        ),
        event_at=event_at(event),
        at=now,
        source_event_id=event.id,
    )
