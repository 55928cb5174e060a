"""Subscription objects: status, plan, periods and cancellation in event order, in both eras' shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from shared import processing
from shared.billing import subscriptions
from shared.errors import PermanentError
from shared.models import Subscription
from tests.shared.stripe.handlers.support import (
    ACCOUNT,
    DAY,
    StripeSubscription,
    balance,
    only,
    run,
)


def test_a_subscription_naming_only_a_known_customer_belongs_to_that_customers_account(seeded, now, t0):
    first = StripeSubscription(t0)
    run(seeded, first.checkout_completed(), now)
    second = StripeSubscription(t0, plan_id="scale", price_id="price_billhook_scale_monthly")
    second.customer, second.metadata = first.customer, {}

    run(seeded, second.updated(at=t0 + DAY, event_type="customer.subscription.created"), now)

    with seeded() as session:
        created = session.scalars(select(Subscription).filter_by(provider_subscription_id=second.id)).one()
    assert (created.account_id, created.plan_id) == (ACCOUNT, "scale")


def test_subscription_update_changes_plan_by_price_cancel_flag_and_periods(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    evt = sub.updated(
        at=t0 + DAY,
        price_id="price_billhook_scale_monthly",
        cancel_at_period_end=True,
        period_start=t0 + DAY,
        period_end=t0 + 31 * DAY,
    )
    run(seeded, evt, now)

    subscription = only(seeded, Subscription)
    assert (subscription.plan_id, subscription.status, subscription.cancel_at_period_end) == ("scale", "active", True)
    assert subscription.current_period_start == datetime.fromtimestamp(t0 + DAY, UTC)
    assert subscription.current_period_end == datetime.fromtimestamp(t0 + 31 * DAY, UTC)
    assert subscription.last_event_id == evt["id"]


def test_subscription_created_event_alone_creates_the_subscription_for_the_metadata_account(seeded, now, t0):
    sub = StripeSubscription(t0)

    run(seeded, sub.updated(at=t0, event_type="customer.subscription.created"), now)

    subscription = only(seeded, Subscription)
    assert (subscription.account_id, subscription.plan_id, subscription.status) == (ACCOUNT, "growth", "active")
    assert balance(seeded) == 0  # credits come with the checkout or the paid invoice


def test_subscription_deleted_cancels_it(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)

    run(seeded, sub.updated(at=t0 + 2 * DAY, event_type="customer.subscription.deleted", status="canceled"), now)

    subscription = only(seeded, Subscription)
    assert subscription.status == "canceled"
    assert subscription.canceled_at is not None
    assert subscription.cancel_at_period_end is False


def test_an_older_update_arriving_after_a_newer_one_changes_nothing(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    newer = sub.updated(at=t0 + 2 * DAY, price_id="price_billhook_scale_monthly", cancel_at_period_end=True)
    older = sub.updated(at=t0 + DAY, price_id="price_billhook_starter_monthly", status="past_due")

    run(seeded, newer, now)
    result = run(seeded, older, now)

    assert result.outcome == processing.DONE  # handled: it just has nothing newer to say
    subscription = only(seeded, Subscription)
    assert (subscription.plan_id, subscription.status, subscription.cancel_at_period_end) == ("scale", "active", True)
    assert subscription.last_event_id == newer["id"]


def test_an_update_older_than_the_deletion_does_not_revive_the_subscription(seeded, now, t0):
    sub = StripeSubscription(t0)
    run(seeded, sub.checkout_completed(), now)
    run(seeded, sub.updated(at=t0 + 2 * DAY, event_type="customer.subscription.deleted", status="canceled"), now)

    run(seeded, sub.updated(at=t0 + DAY, status="active"), now)

    assert only(seeded, Subscription).status == "canceled"


@pytest.mark.parametrize("status", ["incomplete", "incomplete_expired", "unpaid", "paused"])
def test_a_subscription_stripe_says_is_not_paying_is_not_live(seeded, now, t0, status):
    sub = StripeSubscription(t0)
    run(seeded, sub.updated(at=t0, event_type="customer.subscription.created"), now)

    run(seeded, sub.updated(at=t0 + DAY, status=status), now)

    subscription = only(seeded, Subscription)
    assert subscription.status == status and subscription.status not in subscriptions.LIVE_STATUSES


def test_a_status_stripe_never_sends_fails_the_event(seeded, now, t0):
    sub = StripeSubscription(t0)

    with pytest.raises(PermanentError, match="has no status"):
        run(seeded, sub.updated(at=t0, status="sleeping"), now)
