"""PayPal's subscription lifecycle beyond activation: UPDATED, RE-ACTIVATED and PAYMENT.FAILED,
in any order and told more than once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shared.models import EmailOutbox, Subscription
from tests.factories import paypal_events as pe
from tests.shared.paypal.handlers.support import ACCOUNT, GROWTH_CREDITS, activated, balance, only, run, sale_event

SUB = "I-SUB1"


def failed(start, at, *, cycles_completed=1, failed_count=1) -> dict:
    resource = pe.failed_subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=SUB,
        start_time=start,
        cycles_completed=cycles_completed,
        failed_payments_count=failed_count,
        amount_cents=19900,
        failed_at=at,
    )
    return pe.event("BILLING.SUBSCRIPTION.PAYMENT.FAILED", resource, created=at)


def updated(start, at, *, status="ACTIVE", paypal_plan_id="P-BILLHOOK-GROWTH", next_billing=None) -> dict:
    resource = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id=paypal_plan_id,
        subscription_id=SUB,
        status=status,
        start_time=start,
        status_update_time=at,
        next_billing_time=next_billing,
    )
    return pe.event("BILLING.SUBSCRIPTION.UPDATED", resource, created=at)


def failure_emails(seeded) -> list[EmailOutbox]:
    with seeded() as session:
        return list(session.scalars(select(EmailOutbox).filter_by(template="payment_failed")))


def test_payment_failure_is_past_due_with_one_email_per_failed_cycle(seeded, now):
    run(seeded, activated(now), now)
    cycle_2 = failed(now, now + timedelta(days=30))
    retry = failed(now, now + timedelta(days=33), failed_count=2)  # PayPal retries the same cycle

    for evt in (cycle_2, cycle_2, retry):
        run(seeded, evt, now)

    assert only(seeded, Subscription).status == "past_due"
    [email] = failure_emails(seeded)
    assert email.context["amount_cents"] == 19900 and email.context["description"] == "Growth plan"

    run(seeded, failed(now, now + timedelta(days=60), cycles_completed=2), now)  # the next cycle fails too
    assert len(failure_emails(seeded)) == 2
    assert balance(seeded) == GROWTH_CREDITS  # a failure takes nothing and grants nothing


def test_a_late_failure_does_not_undo_the_newer_paid_sale(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, failed(now, now + timedelta(days=30)), now)
    run(seeded, sale_event(now + timedelta(days=31)), now)  # the retry was paid
    assert only(seeded, Subscription).status == "active"

    run(seeded, failed(now, now + timedelta(days=30)), now)  # a copy of the old failure

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == 2 * GROWTH_CREDITS


def test_a_failure_delivered_after_the_newer_sale_that_paid_its_cycle_changes_nothing(seeded, now):
    run(seeded, activated(now), now)
    run(seeded, sale_event(now + timedelta(days=31)), now)  # the retry was paid: delivered first

    run(seeded, failed(now, now + timedelta(days=30)), now)  # the older failure, late

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == 2 * GROWTH_CREDITS


def test_reactivation_after_suspension_is_active_again(seeded, now):
    run(seeded, activated(now), now)
    suspended = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=SUB,
        status="SUSPENDED",
        start_time=now,
        status_update_time=now + timedelta(days=5),
    )
    run(seeded, pe.event("BILLING.SUBSCRIPTION.SUSPENDED", suspended, created=now + timedelta(days=5)), now)
    reactivated = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=SUB,
        start_time=now,
        status_update_time=now + timedelta(days=6),
    )
    evt = pe.event("BILLING.SUBSCRIPTION.RE-ACTIVATED", reactivated, created=now + timedelta(days=6))

    run(seeded, evt, now)
    run(seeded, evt, now)

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == GROWTH_CREDITS


def test_update_applies_a_revised_plan_and_billing_date(seeded, now):
    run(seeded, activated(now), now)
    next_billing = now + timedelta(days=40)

    run(
        seeded, updated(now, now + timedelta(days=2), paypal_plan_id="P-BILLHOOK-SCALE", next_billing=next_billing), now
    )

    sub = only(seeded, Subscription)
    assert (sub.status, sub.plan_id, sub.current_period_end) == ("active", "scale", next_billing)


def test_a_stale_update_changes_nothing_newer(seeded, now):
    run(seeded, activated(now), now)
    cancelled = pe.subscription(
        account_id=ACCOUNT,
        plan_id="growth",
        paypal_plan_id="P-BILLHOOK-GROWTH",
        subscription_id=SUB,
        status="CANCELLED",
        start_time=now,
        status_update_time=now + timedelta(days=3),
    )
    run(seeded, pe.event("BILLING.SUBSCRIPTION.CANCELLED", cancelled, created=now + timedelta(days=3)), now)

    run(seeded, updated(now, now + timedelta(days=2)), now)  # older than the cancellation

    assert only(seeded, Subscription).status == "canceled"


def test_update_before_activation_with_a_pending_status_changes_no_status(seeded, now):
    run(seeded, updated(now, now, status="APPROVAL_PENDING"), now)
    run(seeded, activated(now + timedelta(seconds=5)), now)

    assert only(seeded, Subscription).status == "active"
    assert balance(seeded) == GROWTH_CREDITS
