"""Two Stripe subscriptions live for one account: the later by Stripe's `created` grants nothing and
is flagged, whatever order the two subscriptions' events arrive in, however often."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from shared.billing import duplicates, entitlements, ledger
from shared.billing.account_summary import account_summary
from shared.models import Account, EmailOutbox, OutgoingEvent, Payment, Subscription
from shared.outcome import Outcome
from tests.factories import stripe_events as se
from tests.shared.outgoing.test_schema import SCHEMA, violations
from tests.shared.stripe.handlers.support import (
    ACCOUNT,
    DAY,
    CreatedSubscription,
    StripeSubscription,
    balance,
    ledger_entries,
    run,
)

GROWTH_CREDITS = 12_000


def subscription(session_factory, sub: StripeSubscription) -> Subscription:
    with session_factory() as session:
        return session.scalars(select(Subscription).filter_by(provider_subscription_id=sub.id)).one()


def kinds(session_factory) -> list[str]:
    return sorted(e.kind for e in ledger_entries(session_factory))


@pytest.fixture
def pair(t0) -> tuple[CreatedSubscription, CreatedSubscription]:
    """The earlier subscription and the later one (a second checkout that went through)."""
    return CreatedSubscription(t0, created=t0), CreatedSubscription(t0, created=t0 + 300)


def _orders() -> list[tuple[str, list[int]]]:
    """Both subscriptions' events (0-2 the earlier's, 3-5 the later's) in several orders."""
    fixed = {
        "earlier_first": [0, 1, 2, 3, 4, 5],
        "later_first": [3, 4, 5, 0, 1, 2],
        "interleaved": [0, 3, 1, 4, 2, 5],
        "invoices_before_subscriptions": [2, 5, 0, 3, 1, 4],
        "earlier_created_last": [0, 2, 3, 4, 5, 1],
    }
    rng = random.Random(17)
    for n in range(3):
        fixed[f"shuffled_{n}"] = rng.sample(range(6), 6)
    return list(fixed.items())


@pytest.mark.parametrize("order", [o for _, o in _orders()], ids=[name for name, _ in _orders()])
def test_the_later_subscription_grants_nothing_in_any_order_and_replays_change_nothing(seeded, now, pair, order):
    earlier, later = pair
    events = earlier.first_period() + later.first_period()

    for i in order:
        run(seeded, events[i], now)
    for i in order:  # Stripe re-sends every one of them under new event ids
        evt = events[i]
        run(seeded, se.event(evt["type"], evt["data"]["object"], created=evt["created"]), now)

    assert balance(seeded) == GROWTH_CREDITS
    kept, flagged = subscription(seeded, earlier), subscription(seeded, later)
    assert kept.duplicate_of_id is None and flagged.duplicate_of_id == kept.id
    grants = [e for e in ledger_entries(seeded) if e.kind == ledger.GRANT_SUBSCRIPTION]
    reversals = [e for e in ledger_entries(seeded) if e.kind == ledger.DUPLICATE_REVERSAL]
    # What the duplicate granted before it could be known was taken back once, keyed on that grant.
    assert len(grants) == len(reversals) + 1
    assert {r.idempotency_key for r in reversals} <= {ledger.duplicate_reversal_key(g.idempotency_key) for g in grants}


def test_when_the_later_came_first_its_grant_is_taken_back_when_the_earlier_goes_live(seeded, now, pair):
    earlier, later = pair
    for evt in later.first_period():
        run(seeded, evt, now)
    assert balance(seeded) == GROWTH_CREDITS

    for evt in earlier.first_period():
        run(seeded, evt, now)

    assert balance(seeded) == GROWTH_CREDITS
    assert kinds(seeded) == ["duplicate_reversal", "subscription_grant", "subscription_grant"]
    with seeded() as session:
        # The main app is told the credits went back, and its entitlement names the earlier one.
        state = entitlements.entitlement(session, ACCOUNT, now=now)
        summary = account_summary(session, session.get(Account, ACCOUNT), now=now)
    assert summary["subscription"]["id"] == earlier.id
    assert state["plan_id"] == "growth" and state["balance"] == GROWTH_CREDITS


def test_a_duplicates_payment_records_no_credits_so_its_refund_takes_nothing(seeded, now, pair, t0):
    earlier, later = pair
    for evt in earlier.first_period() + later.first_period():
        run(seeded, evt, now)
    charge = se.charge(payment_intent=later.intent, amount=19900, amount_refunded=19900)

    run(seeded, se.event("charge.refunded", charge, created=t0 + DAY), now)

    assert balance(seeded) == GROWTH_CREDITS
    with seeded() as session:
        payment = session.scalars(select(Payment).filter_by(subscription_id=subscription(seeded, later).id)).one()
    assert (payment.status, payment.credits_granted) == ("refunded", 0)


def test_a_refund_after_the_reversal_does_not_take_the_credits_twice(seeded, now, pair, t0):
    earlier, later = pair
    for evt in later.first_period() + earlier.first_period():  # the later granted, then taken back
        run(seeded, evt, now)
    charge = se.charge(payment_intent=later.intent, amount=19900, amount_refunded=19900)

    run(seeded, se.event("charge.refunded", charge, created=t0 + DAY), now)

    assert balance(seeded) == GROWTH_CREDITS
    assert "refund_reversal" not in kinds(seeded)


def test_of_two_created_the_same_second_the_larger_id_is_the_duplicate(seeded, now, t0):
    one, two = CreatedSubscription(t0, created=t0), CreatedSubscription(t0, created=t0)
    smaller, larger = sorted((one, two), key=lambda s: s.id)
    for evt in larger.first_period() + smaller.first_period():
        run(seeded, evt, now)

    assert subscription(seeded, larger).duplicate_of_id == subscription(seeded, smaller).id
    assert subscription(seeded, smaller).duplicate_of_id is None
    assert balance(seeded) == GROWTH_CREDITS


def test_a_new_subscription_after_the_first_ended_is_not_a_duplicate(seeded, now, pair):
    earlier, later = pair
    for evt in earlier.first_period():
        run(seeded, evt, now)
    run(
        seeded, earlier.state(at=later.created - 10, status="canceled", event_type="customer.subscription.deleted"), now
    )

    for evt in later.first_period():
        run(seeded, evt, now)

    assert subscription(seeded, later).duplicate_of_id is None
    assert balance(seeded) == 2 * GROWTH_CREDITS


def test_renewals_of_a_duplicate_grant_nothing(seeded, now, pair):
    earlier, later = pair
    for evt in earlier.first_period() + later.first_period():
        run(seeded, evt, now)

    run(seeded, later.invoice(reason="subscription_cycle", period=1), now)

    assert balance(seeded) == GROWTH_CREDITS


def test_a_canceled_duplicate_is_no_longer_open_but_stays_flagged(seeded, now, pair):
    earlier, later = pair
    for evt in earlier.first_period() + later.first_period():
        run(seeded, evt, now)
    with seeded() as session:
        assert [
            (d.provider_subscription_id, e.provider_subscription_id) for d, e in duplicates.open_duplicates(session)
        ] == [(later.id, earlier.id)]

    run(seeded, later.state(at=later.created + DAY, status="canceled", event_type="customer.subscription.deleted"), now)

    with seeded() as session:
        assert duplicates.open_duplicates(session) == []
        assert [(d["id"], d["open"]) for d in duplicates.duplicates_of_account(session, ACCOUNT)] == [(later.id, False)]
    assert subscription(seeded, earlier).status == "active"
    assert balance(seeded) == GROWTH_CREDITS


def test_the_main_app_is_told_the_earlier_subscription_even_when_the_duplicate_changed_last(seeded, now, t0):
    earlier = CreatedSubscription(t0, created=t0)
    later = CreatedSubscription(t0, created=t0 + 300, plan_id="starter", price_id="price_billhook_starter_monthly")
    for evt in earlier.first_period() + later.first_period():
        run(seeded, evt, now)
    # The duplicate's newer event makes it the most recently updated row.
    run(seeded, later.state(at=later.created + DAY, event_type="customer.subscription.updated"), now)

    with seeded() as session:
        state = entitlements.entitlement(session, ACCOUNT, now=now)
        summary = account_summary(session, session.get(Account, ACCOUNT), now=now)
    assert state["plan_id"] == "growth" and state["entitled"]
    assert summary["subscription"]["id"] == earlier.id
    assert balance(seeded) == GROWTH_CREDITS


def test_an_expanded_subscription_on_the_checkout_tells_when_stripe_created_it(seeded, now, pair):
    earlier, later = pair
    for evt in earlier.first_period():
        run(seeded, evt, now)
    checkout = later.checkout_completed(at=later.created + 5)
    checkout["data"]["object"]["subscription"] = {"id": later.id, "object": "subscription", "created": later.created}

    run(seeded, checkout, now)  # before any customer.subscription.* event of it

    assert subscription(seeded, later).duplicate_of_id == subscription(seeded, earlier).id
    assert balance(seeded) == GROWTH_CREDITS


def test_the_main_app_is_told_the_flag_with_the_earlier_subscription_as_the_accounts(seeded, now, t0):
    earlier = CreatedSubscription(t0, created=t0)
    later = CreatedSubscription(t0, created=t0 + 300, plan_id="starter", price_id="price_billhook_starter_monthly")
    for evt in earlier.first_period():
        run(seeded, evt, now)

    run(seeded, later.state(at=later.created + 1), now)  # live, and known to be the later: flagged at once
    run(seeded, later.state(at=later.created + 1), now)

    with seeded() as session:
        told = list(session.scalars(select(OutgoingEvent).order_by(OutgoingEvent.sequence)))
    flag = [e for e in told if e.body["data"].get("previous") == {"duplicate_of": None}]
    assert [e.type for e in flag] == ["subscription.updated"]
    assert flag[0].body["data"]["subscription"]["id"] == later.id
    assert flag[0].body["data"]["duplicate_of"] == earlier.id
    assert violations(flag[0].body, SCHEMA) == []
    assert told[-1] is flag[0]
    assert (told[-1].body["data"]["billing"]["plan_id"], told[-1].body["data"]["billing"]["balance"]) == (
        "growth",
        GROWTH_CREDITS,
    )


def test_a_reversal_that_spends_what_was_left_sends_low_credits_once(seeded, now, pair):
    earlier, later = pair
    for evt in later.first_period():
        run(seeded, evt, now)
    with seeded.begin() as session:  # the customer spent the duplicate's credits meanwhile
        ledger.debit_credits(
            session,
            Outcome(),
            account_id=ACCOUNT,
            amount=GROWTH_CREDITS - 50,
            description="usage",
            idempotency_key="usage-1",
            at=now,
        )

    for evt in earlier.first_period() + earlier.first_period():
        run(seeded, se.event(evt["type"], evt["data"]["object"], created=evt["created"]), now)

    assert balance(seeded) == 50  # the earlier's period, less what the duplicate's paid for
    with seeded() as session:
        low = session.scalars(select(EmailOutbox).filter_by(template="low_credits")).all()
    assert [e.context["balance"] for e in low] == [50]
