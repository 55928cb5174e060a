"""Trials: Stripe warns three days before a trial ends (`customer.subscription.trial_will_end`);
the subscriber is emailed once per trial. A trial grants no plan credits: the first paid invoice
after it (`subscription_cycle`) grants the first period's, under that period's own key.

`trial_of` is what the checkout and invoice handlers ask to tell a trial's free start from a
paid one: billhook puts the plan's trial days in the subscription's metadata at checkout."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.billing import notifications
from shared.errors import PermanentError
from shared.inbox.registry import handles
from shared.models import WebhookEvent
from shared.outcome import Outcome
from shared.stripe.handlers.common import PROVIDER, data_object, lock_subscription_for, metadata, plan_by_id, ts

TRIAL_DAYS_KEY = "trial_days"


@handles(PROVIDER, "customer.subscription.trial_will_end")
def trial_will_end(session: Session, event: WebhookEvent, now: datetime, outcome: Outcome) -> None:
    stripe_subscription = data_object(event)
    subscription_id = stripe_subscription.get("id")
    trial_end = ts(stripe_subscription.get("trial_end"))
    if not subscription_id or trial_end is None:
        raise PermanentError("customer.subscription.trial_will_end must carry the subscription's id and trial_end")
    subscription = lock_subscription_for(session, outcome, subscription_id, stripe_subscription)
    plan = plan_by_id(session, subscription.plan_id or metadata(stripe_subscription).get("plan_id"))
    notifications.trial_ending(session, outcome, subscription, plan, trial_end=trial_end)


def trial_days(meta: dict) -> int:
    """The trial days billhook asked Stripe for (0 for none), from the session's or subscription's metadata."""
    value = meta.get(TRIAL_DAYS_KEY)
    return int(value) if isinstance(value, str) and value.isdigit() else 0
